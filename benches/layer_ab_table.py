"""Median stage times (ms) and 1 -> 2 thread speedups from benches/layer_ab.py output."""
import json,sys,statistics
rows={}
for f in sys.argv[1:]:
    for line in open(f):
        if not line.startswith('{'): continue
        d=json.loads(line)
        key=(d['config'],int(d['params']['batch']),d['bin'],d['threads'])
        st=d['stages']
        rows.setdefault(key,[]).append([d['total']['median_s']]+[st[s]['median_s'] for s in ['gemm_in','conv','scan','norm_gate','gemm_out']])
med={k:[statistics.median(c)*1e3 for c in zip(*v)] for k,v in rows.items()}
n={k:len(v) for k,v in rows.items()}
names=['total','gemm_in','conv','scan','norm_gate','gemm_out']
print('| config | batch | binary | threads | '+' | '.join(names)+' | runs |')
print('|'+'---|'*(5+len(names)))
for k in sorted(med):
    c,b,bn,t=k
    print(f'| {c} | {b} | {bn.replace("ss2d-","")} | {t} | '+' | '.join('%.3f'%x for x in med[k])+f' | {n[k]} |')
print()
print('Speedup 1 -> 2 threads (median 1t / median 2t):')
print('| config | batch | binary | '+' | '.join(names)+' |')
print('|'+'---|'*(3+len(names)))
for k in sorted(med):
    c,b,bn,t=k
    if t!=1 or (c,b,bn,2) not in med: continue
    print(f'| {c} | {b} | {bn.replace("ss2d-","")} | '+' | '.join('%.2fx'%(a/bb) for a,bb in zip(med[k],med[(c,b,bn,2)]))+' |')
