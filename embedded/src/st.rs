//! A minimal, allocation-free reader of safetensors files (F32 tensors, string metadata),
//! enough for the golden files: an 8-byte little-endian header length, a JSON header
//! `{"__metadata__": {"key": "value", ...}, "name": {"dtype": "F32", "shape": [..],
//! "data_offsets": [start, end]}, ...}`, then the data. Tensors are borrowed in place (the
//! file is embedded 8-byte aligned, and every offset must be a multiple of 4).

/// Why a file could not be read.
#[derive(Clone, Copy, Debug)]
pub struct Error(pub &'static str);

type Result<T> = core::result::Result<T, Error>;

/// Maximum tensor rank read.
const MAX_RANK: usize = 4;

/// A parsed safetensors file.
pub struct File<'a> {
    header: &'a [u8],
    data: &'a [u8],
}

impl<'a> File<'a> {
    /// Splits `bytes` into header and data.
    pub fn parse(bytes: &'a [u8]) -> Result<File<'a>> {
        let len: [u8; 8] = bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or(Error("file shorter than 8 bytes"))?;
        let len = usize::try_from(u64::from_le_bytes(len))
            .map_err(|_| Error("header length overflows"))?;
        let end = len.checked_add(8).ok_or(Error("header length overflows"))?;
        let header = bytes
            .get(8..end)
            .ok_or(Error("header runs past the end of the file"))?;
        Ok(File {
            header,
            data: &bytes[end..],
        })
    }

    /// The metadata string under `key` (unescaped values only), if present.
    pub fn meta(&self, key: &str) -> Result<Option<&'a str>> {
        let mut c = Cursor::new(self.header);
        c.object(|c, k| {
            if k != b"__metadata__" {
                return c.skip().map(|_| None);
            }
            c.object(|c, mk| {
                let v = c.string()?;
                Ok((mk == key.as_bytes()).then_some(v))
            })
        })?
        .map(|v| core::str::from_utf8(v).map_err(|_| Error("metadata value is not UTF-8")))
        .transpose()
    }

    /// The values of F32 tensor `name` (checked against its shape), if present.
    pub fn tensor(&self, name: &str) -> Result<Option<&'a [f32]>> {
        let mut c = Cursor::new(self.header);
        let found = c.object(|c, k| {
            if k != name.as_bytes() {
                return c.skip().map(|_| None);
            }
            let (mut dtype_ok, mut shape, mut rank, mut offsets) =
                (false, [0; MAX_RANK], None, None);
            c.object(|c, field| {
                match field {
                    b"dtype" => dtype_ok = c.string()? == b"F32",
                    b"shape" => {
                        let mut r = 0;
                        c.array(|c| {
                            let slot = shape.get_mut(r).ok_or(Error("tensor rank above 4"))?;
                            *slot = c.uint()?;
                            r += 1;
                            Ok(())
                        })?;
                        rank = Some(r);
                    }
                    b"data_offsets" => {
                        let mut o = [0usize; 2];
                        let mut i = 0;
                        c.array(|c| {
                            *o.get_mut(i)
                                .ok_or(Error("data_offsets has more than 2 entries"))? =
                                c.uint()?;
                            i += 1;
                            Ok(())
                        })?;
                        if i != 2 {
                            return Err(Error("data_offsets needs 2 entries"));
                        }
                        offsets = Some(o);
                    }
                    _ => c.skip()?,
                }
                Ok(None::<()>)
            })?;
            if !dtype_ok {
                return Err(Error("tensor dtype is not F32"));
            }
            let rank = rank.ok_or(Error("tensor without shape"))?;
            let [start, end] = offsets.ok_or(Error("tensor without data_offsets"))?;
            Ok(Some((shape, rank, start, end)))
        })?;
        let Some((shape, rank, start, end)) = found else {
            return Ok(None);
        };
        let bytes = self
            .data
            .get(start..end)
            .ok_or(Error("tensor data outside the file"))?;
        let values: &[f32] = bytemuck::try_cast_slice(bytes)
            .map_err(|_| Error("tensor data misaligned or not a multiple of 4 bytes"))?;
        if shape[..rank].iter().product::<usize>() != values.len() {
            return Err(Error("tensor shape and data size disagree"));
        }
        Ok(Some(values))
    }
}

/// A JSON cursor over the header.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a [u8]) -> Self {
        Cursor { s, i: 0 }
    }

    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|b| b.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Result<u8> {
        self.ws();
        self.s
            .get(self.i)
            .copied()
            .ok_or(Error("header JSON ends early"))
    }

    fn eat(&mut self, want: u8) -> Result<()> {
        if self.peek()? != want {
            return Err(Error("header JSON malformed"));
        }
        self.i += 1;
        Ok(())
    }

    /// A string's raw bytes between the quotes (escapes are skipped over, not decoded).
    fn string(&mut self) -> Result<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match self.s.get(self.i) {
                None => return Err(Error("header JSON string not closed")),
                Some(b'"') => break,
                Some(b'\\') => self.i += 2,
                Some(_) => self.i += 1,
            }
        }
        let v = &self.s[start..self.i];
        self.i += 1;
        Ok(v)
    }

    fn uint(&mut self) -> Result<usize> {
        self.ws();
        let start = self.i;
        let mut v: usize = 0;
        while let Some(d @ b'0'..=b'9') = self.s.get(self.i).copied() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(usize::from(d - b'0')))
                .ok_or(Error("header integer overflows"))?;
            self.i += 1;
        }
        if self.i == start {
            return Err(Error("header JSON: integer expected"));
        }
        Ok(v)
    }

    /// Walks an object, calling `f(cursor, key)` on each value; stops at the first `Some`.
    fn object<T>(
        &mut self,
        mut f: impl FnMut(&mut Self, &'a [u8]) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Ok(None);
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            if let Some(v) = f(self, key)? {
                return Ok(Some(v));
            }
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Ok(None);
                }
                _ => return Err(Error("header JSON malformed object")),
            }
        }
    }

    fn array(&mut self, mut f: impl FnMut(&mut Self) -> Result<()>) -> Result<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.i += 1;
            return Ok(());
        }
        loop {
            f(self)?;
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Error("header JSON malformed array")),
            }
        }
    }

    /// Skips any value (string, number, literal, object, array).
    fn skip(&mut self) -> Result<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' => self.object(|c, _| c.skip().map(|_| None::<()>)).map(|_| ()),
            b'[' => self.array(|c| c.skip()),
            _ => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    self.i += 1;
                }
                if self.i == start {
                    return Err(Error("header JSON: value expected"));
                }
                Ok(())
            }
        }
    }
}
