//! `ss2d layer IN OUT`: VMamba's SS2D module forward on a safetensors file.
//!
//! IN holds the module's tensors under VMamba's state_dict names (optionally under a key
//! prefix, `--prefix layers.0.blocks.1.op.` for a full VSSM checkpoint) and the `input` tensor
//! (or `--input-file` names a file holding it). The configuration comes, key by key, from the
//! command line, else from IN's `__metadata__` (keys as in the golden ss2d files: `d_model`,
//! `d_state`, `ssm_ratio`, `dt_rank`, `d_conv`, `conv_bias`, `forward_type`, `channel_first`),
//! else, for the sizes, from the tensors themselves (`d_model` from `in_proj.weight`, `d_state`
//! from `A_logs`, `dt_rank` from `dt_projs_weight`, `ssm_ratio` from `d_inner / d_model`,
//! `d_conv` and `conv_bias` from `conv2d.*`). `forward_type` and `channel_first` have no such
//! fallback: a missing one is an error. OUT receives `output` (the input's shape).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ss2d_core::SimdLevel;
use ss2d_std::layer::{Backend, DtRank, ForwardOptions, Ss2d, Ss2dConfig};
use ss2d_std::{LayerError, Parallelism};

use crate::error::{zeros, Error};
use crate::io::{write_tensors, IoError, OutTensor, Tensor, TensorFile};

/// The tensor names of an SS2D module (VMamba's state_dict names).
pub const TENSOR_NAMES: [&str; 13] = [
    "in_proj.weight",
    "in_proj.bias",
    "conv2d.weight",
    "conv2d.bias",
    "x_proj_weight",
    "dt_projs_weight",
    "dt_projs_bias",
    "A_logs",
    "Ds",
    "out_norm.weight",
    "out_norm.bias",
    "out_proj.weight",
    "out_proj.bias",
];

/// Configuration values given on the command line (`None` = from metadata or tensors).
#[derive(Clone, Debug, Default)]
pub struct ConfigFlags {
    /// `--d-model`.
    pub d_model: Option<usize>,
    /// `--d-state`.
    pub d_state: Option<usize>,
    /// `--ssm-ratio`.
    pub ssm_ratio: Option<f64>,
    /// `--dt-rank`.
    pub dt_rank: Option<DtRank>,
    /// `--d-conv`.
    pub d_conv: Option<usize>,
    /// `--conv-bias`.
    pub conv_bias: Option<bool>,
    /// `--forward-type`.
    pub forward_type: Option<String>,
    /// `--channel-first`.
    pub channel_first: Option<bool>,
}

/// The error for a layer problem in `path`.
pub fn layer_error(path: &Path, e: LayerError) -> Error {
    Error::Shape {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn meta_parse<T: std::str::FromStr>(
    file: &TensorFile,
    key: &str,
    expected: &'static str,
) -> Result<Option<T>, Error> {
    match file.metadata().get(key) {
        None => Ok(None),
        Some(v) => v.trim().parse::<T>().map(Some).map_err(|_| {
            Error::Io(IoError::Metadata {
                path: file.path().to_path_buf(),
                key: key.to_string(),
                value: v.clone(),
                expected,
            })
        }),
    }
}

/// The module's tensors under `prefix`, borrowed from `file` (absent ones are skipped).
pub fn module_tensors<'f>(
    file: &'f TensorFile,
    prefix: &str,
) -> Result<HashMap<String, Tensor<'f>>, Error> {
    let mut map = HashMap::new();
    for name in TENSOR_NAMES {
        let full = format!("{prefix}{name}");
        if let Some(t) = file.optional(&full)? {
            map.insert(full, t);
        }
    }
    Ok(map)
}

/// Resolves the configuration: flags, then `__metadata__`, then the tensors' shapes.
pub fn resolve_config(
    file: &TensorFile,
    tensors: &HashMap<String, Tensor<'_>>,
    prefix: &str,
    flags: &ConfigFlags,
) -> Result<Ss2dConfig, Error> {
    let shape_of = |name: &str| tensors.get(&format!("{prefix}{name}")).map(|t| t.shape());
    let dim = |name: &str, i: usize| shape_of(name).and_then(|s| s.get(i).copied());
    let missing = |what: &str, how: &str| {
        Error::Usage(format!(
            "{}: no {what}: give {how} or the `{what}` metadata key",
            file.path().display()
        ))
    };
    let forward_type = match &flags.forward_type {
        Some(f) => f.clone(),
        None => match file.metadata().get("forward_type") {
            Some(f) => f.trim().to_string(),
            None => return Err(missing("forward_type", "--forward-type")),
        },
    };
    let channel_first = match flags.channel_first {
        Some(v) => v,
        None => file
            .meta_bool("channel_first")?
            .ok_or_else(|| missing("channel_first", "--channel-first true|false"))?,
    };
    let d_model = match flags.d_model {
        Some(v) => Some(v),
        None => meta_parse::<usize>(file, "d_model", "a non-negative integer")?,
    }
    .or_else(|| dim("in_proj.weight", 1))
    .ok_or_else(|| missing("d_model", "--d-model"))?;
    let d_state = match flags.d_state {
        Some(v) => Some(v),
        None => meta_parse::<usize>(file, "d_state", "a non-negative integer")?,
    }
    .or_else(|| dim("A_logs", 1))
    .ok_or_else(|| missing("d_state", "--d-state"))?;
    let dt_rank = match flags.dt_rank {
        Some(v) => Some(v),
        None => meta_parse::<DtRank>(file, "dt_rank", "`auto` or a positive integer")?,
    }
    .or_else(|| dim("dt_projs_weight", 2).map(DtRank::Fixed))
    .ok_or_else(|| missing("dt_rank", "--dt-rank"))?;
    let ssm_ratio = match flags.ssm_ratio {
        Some(v) => Some(v),
        None => meta_parse::<f64>(file, "ssm_ratio", "a number")?,
    }
    .or_else(|| {
        let d_inner = dim("x_proj_weight", 2)?;
        let r = d_inner as f64 / d_model as f64;
        // int(r * d_model) must give d_inner back; nudge half a channel if rounding bites.
        if (r * d_model as f64) as usize == d_inner {
            Some(r)
        } else {
            Some((d_inner as f64 + 0.5) / d_model as f64)
        }
    })
    .ok_or_else(|| missing("ssm_ratio", "--ssm-ratio"))?;
    let d_conv = match flags.d_conv {
        Some(v) => v,
        None => match meta_parse::<usize>(file, "d_conv", "a non-negative integer")? {
            Some(v) => v,
            None => dim("conv2d.weight", 2).unwrap_or(1),
        },
    };
    let conv_bias = match flags.conv_bias {
        Some(v) => v,
        None => match file.meta_bool("conv_bias")? {
            Some(v) => v,
            None => shape_of("conv2d.bias").is_some(),
        },
    };
    Ok(Ss2dConfig {
        d_model,
        d_state,
        ssm_ratio,
        dt_rank,
        d_conv,
        conv_bias,
        forward_type,
        channel_first,
    })
}

/// Options of one `ss2d layer` run.
#[derive(Clone, Debug, Default)]
pub struct LayerOptions {
    /// Key prefix of the module's tensors.
    pub prefix: String,
    /// Kernel threads.
    pub threads: usize,
    /// Run the scalar reference backend.
    pub reference: bool,
    /// Configuration flags.
    pub flags: ConfigFlags,
    /// Read `input` from this file instead of IN.
    pub input_file: Option<PathBuf>,
}

/// The result of a layer run.
#[derive(Clone, Debug)]
pub struct LayerOutput {
    /// The configuration that ran.
    pub config: Ss2dConfig,
    /// Shape of `output` (that of `input`).
    pub shape: Vec<usize>,
    /// `output`.
    pub output: Vec<f32>,
}

/// Loads the layer from `file` and runs it on `input` (from `input_file`, which may be the
/// same file).
pub fn run_layer(
    file: &TensorFile,
    input_file: &TensorFile,
    opts: &LayerOptions,
) -> Result<LayerOutput, Error> {
    let tensors = module_tensors(file, &opts.prefix)?;
    if tensors.is_empty() {
        return Err(Error::Usage(format!(
            "{}: missing tensor `{}in_proj.weight`: no SS2D module tensors under prefix `{}`",
            file.path().display(),
            opts.prefix,
            opts.prefix
        )));
    }
    let config = resolve_config(file, &tensors, &opts.prefix, &opts.flags)?;
    let lookup = |name: &str| tensors.get(name).map(|t| (t.shape(), t.data()));
    let layer = Ss2d::from_tensors(&config, &opts.prefix, &lookup)
        .map_err(|e| layer_error(file.path(), e))?;
    drop(tensors);
    let input = input_file.tensor("input")?;
    let grid = layer
        .dims()
        .grid_of(input.shape())
        .map_err(|e| layer_error(input_file.path(), e))?;
    let mut output = zeros("`output`", input.data().len())?;
    let backend = if opts.reference {
        Backend::Reference
    } else {
        Backend::Fast
    };
    layer
        .forward_with(
            input.data(),
            grid,
            &mut output,
            ForwardOptions {
                backend,
                par: Parallelism::Threads(opts.threads),
                ..ForwardOptions::default()
            },
        )
        .map_err(|e| layer_error(input_file.path(), e))?;
    Ok(LayerOutput {
        config,
        shape: input.shape().to_vec(),
        output,
    })
}

/// Writes `output` with provenance metadata.
pub fn write_output(path: &Path, r: &LayerOutput, reference: bool) -> Result<(), Error> {
    let c = &r.config;
    let mut meta = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        meta.insert(k.to_string(), v);
    };
    put("op", "layer".into());
    put(
        "backend",
        if reference { "reference" } else { "kernel" }.into(),
    );
    put("isa", SimdLevel::current().name().into());
    put("d_model", c.d_model.to_string());
    put("d_state", c.d_state.to_string());
    put("ssm_ratio", format!("{:?}", c.ssm_ratio));
    put("dt_rank", c.dt_rank.to_string());
    put("d_conv", c.d_conv.to_string());
    put("conv_bias", c.conv_bias.to_string());
    put("forward_type", c.forward_type.clone());
    put("channel_first", c.channel_first.to_string());
    put(
        "output_layout",
        if c.channel_first { "BCHW" } else { "BHWC" }.into(),
    );
    put(
        "producer",
        concat!("ss2d ", env!("CARGO_PKG_VERSION")).into(),
    );
    write_tensors(
        path,
        &[OutTensor {
            name: "output",
            shape: &r.shape,
            data: &r.output,
        }],
        &meta,
    )?;
    Ok(())
}

/// `ss2d layer IN OUT ...`.
pub fn command(a: &crate::cli::LayerArgs) -> Result<(), Error> {
    let opts = LayerOptions {
        prefix: a.prefix.clone().unwrap_or_default(),
        threads: a
            .threads
            .map_or_else(crate::scan::default_threads, |t| t as usize),
        reference: a.reference,
        flags: ConfigFlags {
            d_model: a.d_model,
            d_state: a.d_state,
            ssm_ratio: a.ssm_ratio,
            dt_rank: a.dt_rank,
            d_conv: a.d_conv,
            conv_bias: a.conv_bias,
            forward_type: a.forward_type.clone(),
            channel_first: a.channel_first,
        },
        input_file: a.input_file.clone(),
    };
    let file = TensorFile::open(&a.input)?;
    let result = match &opts.input_file {
        Some(p) => {
            let inp = TensorFile::open(p)?;
            run_layer(&file, &inp, &opts)?
        }
        None => run_layer(&file, &file, &opts)?,
    };
    drop(file);
    write_output(&a.output, &result, opts.reference)
}
