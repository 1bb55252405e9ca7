//! Safetensors I/O: named `f32` tensors plus the `__metadata__` string map.
//!
//! Reading loads the whole file (its size bounds every allocation; nothing is sized from the
//! header alone), lets the `safetensors` crate validate the header, and hands out `f32` views:
//! zero-copy (`bytemuck::try_cast_slice`) when the data is aligned and the host is
//! little-endian, a copy otherwise. Every problem is an [`IoError`] whose one-line message
//! names the file and, where it applies, the tensor.
//!
//! Writing serializes to a temporary file in the target's directory and renames it into place,
//! so an error never leaves a partial or empty output file behind.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};

/// Size of the little-endian `u64` header-length prefix of a safetensors file.
const PREFIX: usize = 8;

/// A problem reading or writing a safetensors file. `Display` is one line naming the file and,
/// where it applies, the tensor.
#[derive(Debug)]
#[non_exhaustive]
pub enum IoError {
    /// The file could not be read (missing, a directory, no permission, ...).
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not a well-formed safetensors file.
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// A tensor is stored in a dtype other than `F32`.
    Dtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Its dtype as safetensors names it (`F64`, `BF16`, ...).
        dtype: String,
    },
    /// A tensor's data does not have the size its shape implies.
    Length {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Its declared shape.
        shape: Vec<usize>,
        /// Elements the shape implies (`None` when the product overflows).
        expected: Option<usize>,
        /// Elements actually present.
        actual: usize,
    },
    /// A required tensor is absent.
    Missing {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
    },
    /// A tensor has a rank the operation does not accept.
    Rank {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Accepted ranks.
        expected: Vec<usize>,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// A `__metadata__` value is not of the expected form.
    Metadata {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The value found.
        value: String,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// The output file could not be written.
    Write {
        /// The file that was to be written.
        path: PathBuf,
        /// What went wrong, in words.
        reason: String,
    },
}

/// `(2, 3, 4)`, `(5,)`, `()`.
pub fn fmt_shape(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", parts.join(", "))
        }
    }
}

/// Keeps a message on one line (OS and JSON errors are single-line already; this is a guard).
fn one_line(s: impl fmt::Display) -> String {
    s.to_string().replace(['\n', '\r'], " ")
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoError::Read { path, source } => {
                write!(f, "cannot read {}: {}", path.display(), one_line(source))
            }
            IoError::Header { path, reason } => write!(
                f,
                "{}: not a valid safetensors file: {}",
                path.display(),
                one_line(reason)
            ),
            IoError::Dtype {
                path,
                tensor,
                dtype,
            } => write!(
                f,
                "{}: tensor `{tensor}` has dtype {dtype}, only F32 is supported",
                path.display()
            ),
            IoError::Length {
                path,
                tensor,
                shape,
                expected,
                actual,
            } => match expected {
                Some(e) => write!(
                    f,
                    "{}: tensor `{tensor}` has shape {} ({e} elements) but holds {actual} elements",
                    path.display(),
                    fmt_shape(shape)
                ),
                None => write!(
                    f,
                    "{}: tensor `{tensor}` has shape {} whose size overflows",
                    path.display(),
                    fmt_shape(shape)
                ),
            },
            IoError::Missing { path, tensor } => {
                write!(f, "{}: tensor `{tensor}` is missing", path.display())
            }
            IoError::Rank {
                path,
                tensor,
                expected,
                shape,
            } => {
                let ranks: Vec<String> = expected.iter().map(usize::to_string).collect();
                write!(
                    f,
                    "{}: tensor `{tensor}` has rank {} (shape {}), expected rank {}",
                    path.display(),
                    shape.len(),
                    fmt_shape(shape),
                    ranks.join(" or ")
                )
            }
            IoError::Metadata {
                path,
                key,
                value,
                expected,
            } => write!(
                f,
                "{}: metadata `{key}` is {:?}, expected {expected}",
                path.display(),
                one_line(value)
            ),
            IoError::Write { path, reason } => {
                write!(f, "cannot write {}: {}", path.display(), one_line(reason))
            }
        }
    }
}

impl std::error::Error for IoError {}

/// Where one tensor lives in the file.
#[derive(Clone, Debug)]
struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    /// Absolute byte range in the file.
    start: usize,
    end: usize,
}

/// A loaded safetensors file: its bytes, its tensor index and its `__metadata__`.
#[derive(Debug)]
pub struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
    entries: BTreeMap<String, Entry>,
    metadata: BTreeMap<String, String>,
}

/// One `f32` tensor: its name, shape and data (borrowed from the file when possible).
#[derive(Clone, Debug)]
pub struct Tensor<'a> {
    name: &'a str,
    shape: &'a [usize],
    data: Cow<'a, [f32]>,
}

impl<'a> Tensor<'a> {
    /// The tensor's name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Its shape (row-major).
    pub fn shape(&self) -> &'a [usize] {
        self.shape
    }

    /// Its rank.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Its elements, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// True when the data is a view into the file's bytes (no copy was made).
    pub fn is_borrowed(&self) -> bool {
        matches!(self.data, Cow::Borrowed(_))
    }
}

/// Product of a shape, `None` on overflow.
pub fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

impl TensorFile {
    /// Reads and parses `path`.
    ///
    /// A regular file is read whole (its length bounds the allocation). Anything else (a pipe,
    /// `/dev/stdin`, a device) is read in stages: the 8-byte prefix, then at most the
    /// header length safetensors allows, then only as many data bytes as the header declares
    /// (plus one, to detect trailing bytes), each growing with the bytes actually received.
    /// So an endless source such as `/dev/zero` fails fast instead of filling memory.
    pub fn open(path: impl AsRef<Path>) -> Result<TensorFile, IoError> {
        let path = path.as_ref();
        let read_err = |source| IoError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(read_err)?;
        let meta = file.metadata().map_err(read_err)?;
        if meta.is_dir() {
            return Err(read_err(std::io::Error::other("it is a directory")));
        }
        let bytes = if meta.is_file() {
            let mut v = Vec::new();
            v.try_reserve_exact(usize::try_from(meta.len()).unwrap_or(usize::MAX))
                .map_err(|_| read_err(std::io::Error::other("the file does not fit in memory")))?;
            file.read_to_end(&mut v).map_err(read_err)?;
            v
        } else {
            read_stream(&mut file).map_err(read_err)?
        };
        TensorFile::from_bytes(path, bytes)
    }

    /// Parses the bytes of a safetensors file; `path` only labels error messages.
    pub fn from_bytes(path: impl AsRef<Path>, bytes: Vec<u8>) -> Result<TensorFile, IoError> {
        let path = path.as_ref().to_path_buf();
        let header_err = |reason: String| IoError::Header {
            path: path.clone(),
            reason,
        };
        if bytes.is_empty() {
            return Err(header_err("the file is empty".into()));
        }
        let Some(prefix) = bytes.get(..PREFIX) else {
            return Err(header_err(format!(
                "the file has {} bytes, too short for the 8-byte header length",
                bytes.len()
            )));
        };
        let mut len_bytes = [0u8; PREFIX];
        len_bytes.copy_from_slice(prefix);
        let declared = u64::from_le_bytes(len_bytes);
        let room = (bytes.len() - PREFIX) as u64;
        if declared > room {
            return Err(header_err(format!(
                "the header length field says {declared} bytes but only {room} bytes follow \
                 (truncated or not safetensors)"
            )));
        }
        let (n, meta) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| header_err(describe(&e, &bytes, declared as usize)))?;
        let data_start = PREFIX + n;
        let mut entries = BTreeMap::new();
        for (name, info) in meta.tensors() {
            let (s, e) = info.data_offsets;
            entries.insert(
                name,
                Entry {
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    start: data_start + s,
                    end: data_start + e,
                },
            );
        }
        let metadata = meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Ok(TensorFile {
            path,
            bytes,
            entries,
            metadata,
        })
    }

    /// The file's path (as given).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// True when a tensor of that name exists (in any dtype).
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The `__metadata__` map (empty when the file has none).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// A boolean from `__metadata__` (`"true"` / `"false"`); `None` when the key is absent.
    pub fn meta_bool(&self, key: &str) -> Result<Option<bool>, IoError> {
        match self.metadata.get(key).map(String::as_str) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(IoError::Metadata {
                path: self.path.clone(),
                key: key.to_string(),
                value: other.to_string(),
                expected: "\"true\" or \"false\"",
            }),
        }
    }

    /// The `f32` tensor `name`; an error when it is absent or not `F32`.
    pub fn tensor(&self, name: &str) -> Result<Tensor<'_>, IoError> {
        self.optional(name)?.ok_or_else(|| IoError::Missing {
            path: self.path.clone(),
            tensor: name.to_string(),
        })
    }

    /// The `f32` tensor `name` with one of the given ranks.
    pub fn tensor_rank(&self, name: &str, ranks: &[usize]) -> Result<Tensor<'_>, IoError> {
        let t = self.tensor(name)?;
        self.check_rank(t, ranks)
    }

    /// The `f32` tensor `name` if present (it must then be `F32` and have one of `ranks`).
    pub fn optional_rank(
        &self,
        name: &str,
        ranks: &[usize],
    ) -> Result<Option<Tensor<'_>>, IoError> {
        self.optional(name)?
            .map(|t| self.check_rank(t, ranks))
            .transpose()
    }

    fn check_rank<'a>(&self, t: Tensor<'a>, ranks: &[usize]) -> Result<Tensor<'a>, IoError> {
        if ranks.contains(&t.rank()) {
            Ok(t)
        } else {
            Err(IoError::Rank {
                path: self.path.clone(),
                tensor: t.name.to_string(),
                expected: ranks.to_vec(),
                shape: t.shape.to_vec(),
            })
        }
    }

    /// The `f32` tensor `name` if present; an error when present but not `F32`.
    pub fn optional(&self, name: &str) -> Result<Option<Tensor<'_>>, IoError> {
        let Some((key, e)) = self.entries.get_key_value(name) else {
            return Ok(None);
        };
        if e.dtype != Dtype::F32 {
            return Err(IoError::Dtype {
                path: self.path.clone(),
                tensor: name.to_string(),
                dtype: e.dtype.to_string(),
            });
        }
        // safetensors has validated the ranges against the file; re-check rather than index.
        let raw = self.bytes.get(e.start..e.end).unwrap_or(&[]);
        let actual = raw.len() / 4;
        let expected = numel(&e.shape);
        if expected != Some(actual) || !raw.len().is_multiple_of(4) {
            return Err(IoError::Length {
                path: self.path.clone(),
                tensor: name.to_string(),
                shape: e.shape.clone(),
                expected,
                actual,
            });
        }
        let data = if cfg!(target_endian = "little") {
            match bytemuck::try_cast_slice::<u8, f32>(raw) {
                Ok(v) => Cow::Borrowed(v),
                Err(_) => Cow::Owned(decode_le(raw)),
            }
        } else {
            Cow::Owned(decode_le(raw))
        };
        Ok(Some(Tensor {
            name: key.as_str(),
            shape: &e.shape,
            data,
        }))
    }
}

/// Largest header safetensors accepts (its `MAX_HEADER_SIZE`).
const MAX_HEADER: u64 = 100_000_000;

/// Reads a safetensors stream in stages (see [`TensorFile::open`]); stops early on anything the
/// parser will reject anyway, returning what was read so the parser names the problem.
fn read_stream(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.by_ref().take(PREFIX as u64).read_to_end(&mut v)?;
    let Some(prefix) = v.get(..PREFIX) else {
        return Ok(v);
    };
    let mut len_bytes = [0u8; PREFIX];
    len_bytes.copy_from_slice(prefix);
    let n = u64::from_le_bytes(len_bytes);
    if n > MAX_HEADER {
        return Ok(v);
    }
    r.by_ref().take(n).read_to_end(&mut v)?;
    let Ok(n) = usize::try_from(n) else {
        return Ok(v);
    };
    if v.len() < PREFIX + n {
        return Ok(v);
    }
    let Some(need) = declared_data_len(&v, n).or_else(|| {
        // No tensors (or an unparsable header): no data may follow.
        raw_header(&v, n).map(|_| 0)
    }) else {
        return Ok(v);
    };
    r.take(u64::try_from(need).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut v)?;
    Ok(v)
}

fn decode_le(raw: &[u8]) -> Vec<f32> {
    raw.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Turns a `safetensors` error into words, naming the tensor where the crate does not.
fn describe(e: &SafeTensorError, bytes: &[u8], n: usize) -> String {
    match e {
        SafeTensorError::HeaderTooLarge => {
            format!(
                "the header length field says {n} bytes, more than the 100 MB safetensors allows"
            )
        }
        SafeTensorError::InvalidHeaderLength => {
            format!("the header length field ({n} bytes) does not fit the file")
        }
        SafeTensorError::InvalidHeader(u) => format!("the header is not UTF-8 ({u})"),
        SafeTensorError::InvalidHeaderStart => "the header does not start with `{`".into(),
        SafeTensorError::InvalidHeaderDeserialization(j) | SafeTensorError::JsonError(j) => {
            format!("malformed JSON header ({j})")
        }
        SafeTensorError::TensorInvalidInfo => diagnose_sizes(bytes, n)
            .unwrap_or_else(|| "a tensor's data_offsets do not match its shape and dtype".into()),
        SafeTensorError::InvalidOffset(name) => {
            format!("tensor `{name}` has data_offsets that do not follow the previous tensor's")
        }
        SafeTensorError::MetadataIncompleteBuffer => {
            let data = bytes.len().saturating_sub(PREFIX + n);
            match declared_data_len(bytes, n) {
                Some(need) => format!(
                    "the tensors need {need} data bytes but the file holds {data} \
                     (truncated or trailing bytes)"
                ),
                None => {
                    format!("the tensors' data does not cover the file's {data} data bytes exactly")
                }
            }
        }
        SafeTensorError::ValidationOverflow => {
            diagnose_sizes(bytes, n).unwrap_or_else(|| "a tensor's size overflows".into())
        }
        other => one_line(other),
    }
}

/// Minimal view of a header entry, for diagnostics only.
struct RawInfo {
    dtype: Dtype,
    shape: Vec<usize>,
    data_offsets: (usize, usize),
}

fn raw_info(v: serde_json::Value) -> Option<RawInfo> {
    let dtype: Dtype = serde_json::from_value(v.get("dtype")?.clone()).ok()?;
    let shape: Vec<usize> = serde_json::from_value(v.get("shape")?.clone()).ok()?;
    let data_offsets: (usize, usize) =
        serde_json::from_value(v.get("data_offsets")?.clone()).ok()?;
    Some(RawInfo {
        dtype,
        shape,
        data_offsets,
    })
}

fn raw_header(bytes: &[u8], n: usize) -> Option<HashMap<String, serde_json::Value>> {
    let end = PREFIX.checked_add(n)?;
    let text = std::str::from_utf8(bytes.get(PREFIX..end)?).ok()?;
    serde_json::from_str(text).ok()
}

fn raw_entries(bytes: &[u8], n: usize) -> Vec<(String, RawInfo)> {
    let mut out: Vec<(String, RawInfo)> = raw_header(bytes, n)
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != "__metadata__")
        .filter_map(|(k, v)| Some((k, raw_info(v)?)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Names the first tensor whose byte range disagrees with its shape and dtype.
fn diagnose_sizes(bytes: &[u8], n: usize) -> Option<String> {
    raw_entries(bytes, n).into_iter().find_map(|(name, i)| {
        let (s, e) = i.data_offsets;
        let have = e.checked_sub(s)?;
        let bits = numel(&i.shape).and_then(|k| k.checked_mul(i.dtype.bitsize()));
        match bits {
            Some(b) if b.is_multiple_of(8) && b / 8 == have => None,
            Some(b) => Some(format!(
                "tensor `{name}` has shape {} of {} ({} bytes) but data_offsets cover {have} bytes",
                fmt_shape(&i.shape),
                i.dtype,
                b / 8
            )),
            None => Some(format!(
                "tensor `{name}` has shape {} whose size overflows",
                fmt_shape(&i.shape)
            )),
        }
    })
}

/// Bytes the header's tensors claim (end of the last data range).
fn declared_data_len(bytes: &[u8], n: usize) -> Option<usize> {
    raw_entries(bytes, n)
        .iter()
        .map(|(_, i)| i.data_offsets.1)
        .max()
}

/// A tensor to write: name, shape and row-major data.
#[derive(Clone, Copy, Debug)]
pub struct OutTensor<'a> {
    /// Name in the file.
    pub name: &'a str,
    /// Shape (its product must equal `data.len()`).
    pub shape: &'a [usize],
    /// Row-major elements.
    pub data: &'a [f32],
}

struct F32View<'a> {
    shape: Vec<usize>,
    data: &'a [f32],
}

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        if cfg!(target_endian = "little") {
            Cow::Borrowed(bytemuck::cast_slice(self.data))
        } else {
            Cow::Owned(self.data.iter().flat_map(|x| x.to_le_bytes()).collect())
        }
    }
    fn data_len(&self) -> usize {
        self.data.len() * 4
    }
}

/// Writes `tensors` (and `metadata`, when not empty) to `path` atomically: the file is
/// serialized to a temporary file in the same directory and renamed over `path`. On error no
/// file is left at `path` (an existing one is left untouched) and the temporary file is removed.
pub fn write_tensors(
    path: impl AsRef<Path>,
    tensors: &[OutTensor<'_>],
    metadata: &BTreeMap<String, String>,
) -> Result<(), IoError> {
    let path = path.as_ref();
    let werr = |reason: String| IoError::Write {
        path: path.to_path_buf(),
        reason,
    };
    let mut views = Vec::with_capacity(tensors.len());
    for t in tensors {
        if numel(t.shape) != Some(t.data.len()) {
            return Err(werr(format!(
                "tensor `{}` has shape {} but {} elements",
                t.name,
                fmt_shape(t.shape),
                t.data.len()
            )));
        }
        if views.iter().any(|(n, _)| *n == t.name) {
            return Err(werr(format!("tensor `{}` is given twice", t.name)));
        }
        views.push((
            t.name,
            F32View {
                shape: t.shape.to_vec(),
                data: t.data,
            },
        ));
    }
    let Some(file_name) = path.file_name() else {
        return Err(werr("the path does not name a file".into()));
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // Keep the temporary name within NAME_MAX even for a long target name.
    let stem: String = file_name.to_string_lossy().chars().take(64).collect();
    let tmp_name = format!(
        ".{stem}.{}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let tmp = dir.join(tmp_name);
    let meta: Option<HashMap<String, String>> = if metadata.is_empty() {
        None
    } else {
        Some(
            metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    };
    let result = safetensors::tensor::serialize_to_file(views, meta, &tmp)
        .map_err(|e| match e {
            SafeTensorError::IoError(io) => one_line(io),
            other => one_line(other),
        })
        .and_then(|()| std::fs::rename(&tmp, path).map_err(one_line));
    if let Err(reason) = result {
        // Best effort: the temporary file may not exist (creation failed).
        let _ = std::fs::remove_file(&tmp);
        return Err(werr(reason));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        static N: AtomicU64 = AtomicU64::new(0);
        let d = std::env::temp_dir().join(format!(
            "ss2d-cli-io-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Builds a safetensors file by hand from a header JSON and a data section.
    fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.as_bytes().to_vec();
        while !h.len().is_multiple_of(8) {
            h.push(b' ');
        }
        let mut v = (h.len() as u64).to_le_bytes().to_vec();
        v.extend(h);
        v.extend(data);
        v
    }

    fn msg(r: Result<TensorFile, IoError>) -> String {
        r.expect_err("expected an error").to_string()
    }

    #[test]
    fn round_trip() {
        let d = tmpdir("rt");
        let p = d.join("x.safetensors");
        let a: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b = [1.5f32, -2.0, f32::INFINITY];
        let mut meta = BTreeMap::new();
        meta.insert("delta_softplus".to_string(), "true".to_string());
        meta.insert("note".to_string(), "hello".to_string());
        write_tensors(
            &p,
            &[
                OutTensor {
                    name: "a",
                    shape: &[2, 3, 4],
                    data: &a,
                },
                OutTensor {
                    name: "b",
                    shape: &[3],
                    data: &b,
                },
                OutTensor {
                    name: "empty",
                    shape: &[0, 5],
                    data: &[],
                },
            ],
            &meta,
        )
        .unwrap();
        let f = TensorFile::open(&p).unwrap();
        assert_eq!(f.names().collect::<Vec<_>>(), ["a", "b", "empty"]);
        let ta = f.tensor("a").unwrap();
        assert_eq!(ta.shape(), &[2, 3, 4]);
        assert_eq!(ta.data(), &a[..]);
        assert_eq!(f.tensor("b").unwrap().data(), &b[..]);
        assert_eq!(f.tensor("empty").unwrap().data().len(), 0);
        assert_eq!(f.metadata(), &meta);
        assert_eq!(f.meta_bool("delta_softplus").unwrap(), Some(true));
        assert_eq!(f.meta_bool("absent").unwrap(), None);
        assert!(f.meta_bool("note").is_err());
        // Only the renamed file is left in the directory.
        let left: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
        assert_eq!(left.len(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_dtype_rank_errors() {
        let mut data = vec![0u8; 8 + 12];
        data[..8].copy_from_slice(&1.0f64.to_le_bytes());
        let bytes = raw_file(
            r#"{"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[3],"data_offsets":[8,20]}}"#,
            &data,
        );
        let f = TensorFile::from_bytes("t.safetensors", bytes).unwrap();
        let e = f.tensor("x").unwrap_err().to_string();
        assert!(e.contains("`x`") && e.contains("F64"), "{e}");
        let e = f.tensor("zz").unwrap_err().to_string();
        assert!(e.contains("`zz`") && e.contains("missing"), "{e}");
        assert!(f.optional("zz").unwrap().is_none());
        let e = f.tensor_rank("y", &[2, 3]).unwrap_err().to_string();
        assert!(e.contains("`y`") && e.contains("rank 1"), "{e}");
        assert_eq!(f.tensor_rank("y", &[1]).unwrap().data(), &[0.0; 3]);
        assert!(e.starts_with("t.safetensors: "), "{e}");
    }

    #[test]
    fn misaligned_data_is_copied() {
        // A header padded to 8 bytes plus one extra tensor of 1 byte puts `y` off alignment.
        let mut data = vec![7u8];
        data.extend(2.5f32.to_le_bytes());
        let bytes = raw_file(
            r#"{"p":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"y":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}}"#,
            &data,
        );
        let f = TensorFile::from_bytes("m", bytes).unwrap();
        let y = f.tensor("y").unwrap();
        assert_eq!(y.data(), &[2.5]);
        assert!(!y.is_borrowed());
    }

    #[test]
    fn bad_headers() {
        let e = msg(TensorFile::from_bytes("f", vec![]));
        assert!(e.contains("empty"), "{e}");
        let e = msg(TensorFile::from_bytes("f", vec![1, 2, 3]));
        assert!(e.contains("too short"), "{e}");
        // A huge declared header: refused without allocating it.
        let mut v = u64::MAX.to_le_bytes().to_vec();
        v.extend(b"{}");
        let e = msg(TensorFile::from_bytes("f", v));
        assert!(e.contains("header length"), "{e}");
        // Not JSON.
        let e = msg(TensorFile::from_bytes("f", raw_file("garbage!", &[])));
        assert!(e.contains("JSON"), "{e}");
        // Shape and offsets disagree: the tensor is named.
        let e = msg(TensorFile::from_bytes(
            "f",
            raw_file(
                r#"{"D":{"dtype":"F32","shape":[5],"data_offsets":[0,12]}}"#,
                &[0; 12],
            ),
        ));
        assert!(e.contains("`D`") && e.contains("12 bytes"), "{e}");
        // Truncated data section.
        let e = msg(TensorFile::from_bytes(
            "f",
            raw_file(
                r#"{"u":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                &[0; 10],
            ),
        ));
        assert!(e.contains("16") && e.contains("10"), "{e}");
        // Overflowing shape.
        let e = msg(TensorFile::from_bytes(
            "f",
            raw_file(
                r#"{"u":{"dtype":"F32","shape":[18446744073709551615,4],"data_offsets":[0,16]}}"#,
                &[0; 16],
            ),
        ));
        assert!(e.contains("overflow"), "{e}");
        // Non-string metadata.
        let e = msg(TensorFile::from_bytes(
            "f",
            raw_file(r#"{"__metadata__":{"a":1}}"#, &[]),
        ));
        assert!(e.contains("JSON"), "{e}");
        // Every message is one line and names the file.
        assert!(!e.contains('\n') && e.starts_with("f: "), "{e}");
    }

    #[test]
    fn streams_stop_at_the_declared_size() {
        let good = raw_file(
            r#"{"u":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            &[0; 8],
        );
        // Exactly the file, even when the source goes on forever afterwards.
        let mut endless = std::io::Read::chain(&good[..], std::io::repeat(7));
        let v = read_stream(&mut endless).unwrap();
        assert_eq!(v.len(), good.len() + 1);
        let e = msg(TensorFile::from_bytes("s", v));
        assert!(e.contains("trailing"), "{e}");
        assert_eq!(read_stream(&mut &good[..]).unwrap(), good);
        // An endless stream of zeros: header length 0, stops after the prefix.
        let v = read_stream(&mut std::io::repeat(0)).unwrap();
        assert_eq!(v.len(), PREFIX);
        assert!(msg(TensorFile::from_bytes("z", v)).contains("JSON"));
        // A huge declared header is not read at all.
        let v = read_stream(&mut std::io::repeat(0xff)).unwrap();
        assert_eq!(v.len(), PREFIX);
    }

    #[test]
    fn unreadable_and_unwritable() {
        let e = TensorFile::open("/nonexistent/x.safetensors")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read /nonexistent/x.safetensors"), "{e}");
        let e = write_tensors(
            "/nonexistent/dir/o.safetensors",
            &[OutTensor {
                name: "a",
                shape: &[1],
                data: &[1.0],
            }],
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("cannot write /nonexistent/dir/o.safetensors"),
            "{e}"
        );
        // Shape/data mismatch on write: nothing is created.
        let d = tmpdir("w");
        let p = d.join("o.safetensors");
        let e = write_tensors(
            &p,
            &[OutTensor {
                name: "a",
                shape: &[2],
                data: &[1.0],
            }],
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`a`"), "{e}");
        assert!(!p.exists());
        // Writing onto a directory fails cleanly and leaves no temporary file.
        let sub = d.join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(write_tensors(&sub, &[], &BTreeMap::new()).is_err());
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        let e = TensorFile::open(&sub).unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");
        // A 255-byte file name still gets a valid temporary name.
        let long = d.join("x".repeat(240) + ".safetensors");
        write_tensors(&long, &[], &BTreeMap::new()).unwrap();
        assert!(TensorFile::open(&long).unwrap().names().next().is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
