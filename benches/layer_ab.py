#!/usr/bin/env python3
"""A/B of `ss2d bench --op layer` binaries on a shared machine: interleaved runs in small units
(one config, batch and thread count; every binary back to back, order alternating per unit),
each unit kept only when the machine was idle (>= TH, default 0.85, of CPU time) just before
and just after it, else retried. JSON lines (with "bin") are appended to OUT; summarize with
benches/layer_ab_table.py OUT.

  TH=0.8 python3 benches/layer_ab.py OUT ROUNDS REPS BATCHES CONFIGS THREADS BIN...
  e.g. TH=0.8 python3 benches/layer_ab.py ab.jsonl 5 30 1 s1l8,s2l5,vanilla 1,2 ss2d-old ss2d-new
(binaries are run as ./BIN from the current directory)."""
import subprocess, sys, time
out, rounds, reps = sys.argv[1], int(sys.argv[2]), sys.argv[3]
batches, configs, threads = sys.argv[4].split(','), sys.argv[5].split(','), sys.argv[6].split(',')
bins = sys.argv[7:]
import os
TH = float(os.environ.get("TH", "0.85"))
def idle(dt=0.3):
    def rd():
        v = list(map(int, open('/proc/stat').readline().split()[1:])); return sum(v), v[3] + v[4]
    t0, i0 = rd(); time.sleep(dt); t1, i1 = rd()
    return (i1 - i0) / max(1, t1 - t0)
units = [(b, c, t) for b in batches for c in configs for t in threads]
fo = open(out, 'a')
for r in range(rounds):
    for k, (b, c, t) in enumerate(units):
        while True:
            if idle() < TH:
                continue
            lines = []
            order = bins if (r + k) % 2 == 0 else bins[::-1]
            for bn in order:
                p = subprocess.run(['./' + bn, 'bench', '--op', 'layer', '--threads', t, '--config', c,
                                    '--sweep', 'batch=' + b, '--reps', reps, '--json'], capture_output=True, text=True)
                lines += ['{"bin":"%s",' % bn + l[1:] for l in p.stdout.splitlines() if l.startswith('{')]
            if idle(0.15) >= TH:
                fo.write('\n'.join(lines) + '\n'); fo.flush()
                break
    print('round', r + 1, time.strftime('%H:%M:%S'), file=sys.stderr, flush=True)
