//! Library side of the `ss2d` command: safetensors I/O and the commands.
#![deny(missing_docs)]
