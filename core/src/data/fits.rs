//! A small FITS reader for the subset survey products use: header cards, image HDUs
//! (BITPIX 8/16/32/64/−32/−64 with BSCALE/BZERO) and binary tables (TFORM L, B, I, J, K, E, D,
//! A with repeat counts, TSCAL/TZERO), as defined by the FITS Standard 4.0 (Pence et al. 2010,
//! A&A 524, A42; IAU FITS Working Group 2018). Whole-file read; every offset is checked against
//! the file length, so a truncated file is an error naming the HDU, never a panic.
//!
//! Why not a crate: `fitsrs` 0.4 targets images (its binary-table support is "basic" and has no
//! column-by-name access) and `fitsio` needs cfitsio built from C; these ~300 lines cover the
//! DESI, SDSS and Legacy Survey products and are tested against astropy on real files.

use std::path::{Path, PathBuf};

use super::DataError;

const BLOCK: usize = 2880;
const FORMAT: &str = "FITS";

#[derive(Debug, Clone)]
pub struct Hdu {
    pub index: usize,
    /// EXTNAME, or `PRIMARY` for the first HDU without one.
    pub name: String,
    pub cards: Vec<(String, String)>,
    data_offset: usize,
    data_len: usize,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// TFORM type letter.
    pub code: char,
    pub repeat: usize,
    pub offset: usize,
    pub scale: f64,
    pub zero: f64,
}

pub struct FitsFile {
    path: PathBuf,
    bytes: Vec<u8>,
    pub hdus: Vec<Hdu>,
}

fn parse_value(raw: &str) -> String {
    let raw = raw.trim_start();
    if let Some(rest) = raw.strip_prefix('\'') {
        // A quoted string; '' is an escaped quote. Trailing spaces are not significant.
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    out.push('\'');
                    chars.next();
                } else {
                    break;
                }
            } else {
                out.push(c);
            }
        }
        return out.trim_end().to_string();
    }
    raw.split('/').next().unwrap_or("").trim().to_string()
}

impl FitsFile {
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        Self::from_bytes(path, bytes)
    }

    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, DataError> {
        let err = |detail: String| DataError::Format { path: path.display().to_string(), format: FORMAT, detail };
        if bytes.len() < BLOCK || !bytes.starts_with(b"SIMPLE  =") {
            return Err(err(format!(
                "{} bytes, no `SIMPLE =` card at the start; not a FITS file (or empty)",
                bytes.len()
            )));
        }
        let mut hdus = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let index = hdus.len();
            let mut cards = Vec::new();
            let mut ended = false;
            while !ended {
                if pos + BLOCK > bytes.len() {
                    return Err(err(format!("HDU {index}: header runs past the end of the file (truncated?)")));
                }
                for card in bytes[pos..pos + BLOCK].chunks(80) {
                    let text = String::from_utf8_lossy(card);
                    let key = text.get(0..8).unwrap_or("").trim().to_string();
                    if key == "END" {
                        ended = true;
                        break;
                    }
                    if text.get(8..10) == Some("= ") {
                        cards.push((key, parse_value(text.get(10..).unwrap_or(""))));
                    }
                }
                pos += BLOCK;
            }
            let get = |k: &str| cards.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
            let int = |k: &str| -> Result<i64, DataError> {
                get(k)
                    .ok_or_else(|| err(format!("HDU {index}: missing required keyword {k}")))?
                    .parse::<i64>()
                    .map_err(|_| err(format!("HDU {index}: keyword {k} = {:?} is not an integer", get(k))))
            };
            let bitpix = int("BITPIX")?;
            let naxis = int("NAXIS")? as usize;
            let mut n: usize = if naxis == 0 { 0 } else { 1 };
            for a in 1..=naxis {
                n = n.saturating_mul(int(&format!("NAXIS{a}"))? as usize);
            }
            let pcount = get("PCOUNT").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
            let gcount = get("GCOUNT").and_then(|v| v.parse::<usize>().ok()).unwrap_or(1);
            let data_len = (bitpix.unsigned_abs() as usize / 8).saturating_mul(gcount).saturating_mul(pcount + n);
            let name = get("EXTNAME")
                .map(str::to_string)
                .unwrap_or_else(|| if index == 0 { "PRIMARY".to_string() } else { format!("HDU{index}") });
            if pos + data_len > bytes.len() {
                return Err(err(format!(
                    "HDU {index} ({name}) needs {data_len} data bytes at offset {pos}, but the file ends at {}; \
                     the file is truncated — download it again",
                    bytes.len()
                )));
            }
            hdus.push(Hdu { index, name, cards, data_offset: pos, data_len });
            pos += data_len.div_ceil(BLOCK) * BLOCK;
            // Trailing bytes that are not a header (zero padding) end the file.
            if pos < bytes.len() && !bytes[pos..].starts_with(b"XTENSION=") {
                break;
            }
        }
        Ok(Self { path: path.to_path_buf(), bytes, hdus })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, detail: String) -> DataError {
        DataError::Format { path: self.path.display().to_string(), format: FORMAT, detail }
    }

    pub fn hdu(&self, name: &str) -> Result<&Hdu, DataError> {
        self.hdus.iter().find(|h| h.name.eq_ignore_ascii_case(name)).ok_or_else(|| {
            let have: Vec<&str> = self.hdus.iter().map(|h| h.name.as_str()).collect();
            self.err(format!("no HDU named {name} (it has: {})", have.join(", ")))
        })
    }

    pub fn has_hdu(&self, name: &str) -> bool {
        self.hdus.iter().any(|h| h.name.eq_ignore_ascii_case(name))
    }

    /// Image data as f64 with BSCALE/BZERO applied, and its shape in row-major (numpy) order.
    pub fn image(&self, hdu: &Hdu) -> Result<(Vec<usize>, Vec<f64>), DataError> {
        let bitpix: i64 = hdu.get("BITPIX").and_then(|v| v.parse().ok()).unwrap_or(0);
        let naxis: usize = hdu.get("NAXIS").and_then(|v| v.parse().ok()).unwrap_or(0);
        if hdu.get("XTENSION").is_some_and(|x| x != "IMAGE") {
            return Err(self.err(format!("HDU {} is a {}, not an image", hdu.name, hdu.get("XTENSION").unwrap_or(""))));
        }
        let mut shape: Vec<usize> =
            (1..=naxis).map(|a| hdu.get(&format!("NAXIS{a}")).and_then(|v| v.parse().ok()).unwrap_or(0)).collect();
        shape.reverse();
        let scale = hdu.float("BSCALE").unwrap_or(1.0);
        let zero = hdu.float("BZERO").unwrap_or(0.0);
        let data = &self.bytes[hdu.data_offset..hdu.data_offset + hdu.data_len];
        let values: Vec<f64> = match bitpix {
            8 => data.iter().map(|&b| b as f64).collect(),
            16 => data.chunks_exact(2).map(|c| i16::from_be_bytes([c[0], c[1]]) as f64).collect(),
            32 => data.chunks_exact(4).map(|c| i32::from_be_bytes(c.try_into().expect("4 bytes")) as f64).collect(),
            64 => data.chunks_exact(8).map(|c| i64::from_be_bytes(c.try_into().expect("8 bytes")) as f64).collect(),
            -32 => data.chunks_exact(4).map(|c| f32::from_be_bytes(c.try_into().expect("4 bytes")) as f64).collect(),
            -64 => data.chunks_exact(8).map(|c| f64::from_be_bytes(c.try_into().expect("8 bytes"))).collect(),
            other => return Err(self.err(format!("HDU {}: unsupported BITPIX {other}", hdu.name))),
        };
        let values =
            if scale != 1.0 || zero != 0.0 { values.into_iter().map(|v| v * scale + zero).collect() } else { values };
        Ok((shape, values))
    }

    /// Binary-table columns of `hdu` and its row count.
    pub fn columns(&self, hdu: &Hdu) -> Result<(Vec<Column>, usize), DataError> {
        if hdu.get("XTENSION") != Some("BINTABLE") {
            return Err(self.err(format!("HDU {} is not a binary table", hdu.name)));
        }
        let nfields: usize = hdu.get("TFIELDS").and_then(|v| v.parse().ok()).unwrap_or(0);
        let row_len: usize = hdu.get("NAXIS1").and_then(|v| v.parse().ok()).unwrap_or(0);
        let rows: usize = hdu.get("NAXIS2").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut cols = Vec::with_capacity(nfields);
        let mut offset = 0;
        for i in 1..=nfields {
            let tform = hdu.get(&format!("TFORM{i}")).unwrap_or("").trim().to_string();
            let digits: String = tform.chars().take_while(|c| c.is_ascii_digit()).collect();
            let repeat: usize = if digits.is_empty() { 1 } else { digits.parse().unwrap_or(1) };
            let code = tform[digits.len()..].chars().next().unwrap_or('?');
            let width = match code {
                'L' | 'B' | 'A' => 1,
                'I' => 2,
                'J' | 'E' => 4,
                'K' | 'D' | 'C' => 8,
                'M' => 16,
                'P' => 8,
                'Q' => 16,
                'X' => 0,
                _ => return Err(self.err(format!("HDU {}: column {i} has unsupported TFORM {tform:?}", hdu.name))),
            };
            let bytes = if code == 'X' { repeat.div_ceil(8) } else { width * repeat };
            cols.push(Column {
                name: hdu.get(&format!("TTYPE{i}")).unwrap_or("").to_string(),
                code,
                repeat,
                offset,
                scale: hdu.float(&format!("TSCAL{i}")).unwrap_or(1.0),
                zero: hdu.float(&format!("TZERO{i}")).unwrap_or(0.0),
            });
            offset += bytes;
        }
        if offset != row_len {
            return Err(self.err(format!("HDU {}: columns span {offset} bytes but NAXIS1 = {row_len}", hdu.name)));
        }
        Ok((cols, rows))
    }

    fn column_of(&self, hdu: &Hdu, name: &str) -> Result<(Column, usize, usize), DataError> {
        let (cols, rows) = self.columns(hdu)?;
        let row_len: usize = hdu.get("NAXIS1").and_then(|v| v.parse().ok()).unwrap_or(0);
        let col = cols
            .into_iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| self.err(format!("HDU {} has no column {name}", hdu.name)))?;
        Ok((col, rows, row_len))
    }

    pub fn has_column(&self, hdu: &Hdu, name: &str) -> bool {
        self.columns(hdu).is_ok_and(|(cols, _)| cols.iter().any(|c| c.name.eq_ignore_ascii_case(name)))
    }

    /// Numeric column as f64 (TSCAL/TZERO applied), `rows × repeat` values row-major.
    pub fn column_f64(&self, hdu: &Hdu, name: &str) -> Result<(Vec<f64>, usize), DataError> {
        let (col, rows, row_len) = self.column_of(hdu, name)?;
        let mut out = Vec::with_capacity(rows * col.repeat);
        for r in 0..rows {
            let start = hdu.data_offset + r * row_len + col.offset;
            let cell = &self.bytes[start..];
            for k in 0..col.repeat {
                let v = match col.code {
                    'L' => f64::from(u8::from(cell[k] == b'T')),
                    'B' => cell[k] as f64,
                    'I' => i16::from_be_bytes([cell[2 * k], cell[2 * k + 1]]) as f64,
                    'J' => i32::from_be_bytes(cell[4 * k..4 * k + 4].try_into().expect("4 bytes")) as f64,
                    'K' => i64::from_be_bytes(cell[8 * k..8 * k + 8].try_into().expect("8 bytes")) as f64,
                    'E' => f32::from_be_bytes(cell[4 * k..4 * k + 4].try_into().expect("4 bytes")) as f64,
                    'D' => f64::from_be_bytes(cell[8 * k..8 * k + 8].try_into().expect("8 bytes")),
                    c => return Err(self.err(format!("HDU {}: column {name} (TFORM {c}) is not numeric", hdu.name))),
                };
                out.push(v * col.scale + col.zero);
            }
        }
        Ok((out, col.repeat))
    }

    /// 64-bit integer column, exact (no f64 rounding; DESI TARGETIDs exceed 2^53).
    pub fn column_i64(&self, hdu: &Hdu, name: &str) -> Result<Vec<i64>, DataError> {
        let (col, rows, row_len) = self.column_of(hdu, name)?;
        let mut out = Vec::with_capacity(rows);
        for r in 0..rows {
            let cell = &self.bytes[hdu.data_offset + r * row_len + col.offset..];
            let v = match col.code {
                'K' => i64::from_be_bytes(cell[..8].try_into().expect("8 bytes")),
                'J' => i32::from_be_bytes(cell[..4].try_into().expect("4 bytes")) as i64,
                'I' => i16::from_be_bytes([cell[0], cell[1]]) as i64,
                'B' => cell[0] as i64,
                c => return Err(self.err(format!("HDU {}: column {name} (TFORM {c}) is not an integer", hdu.name))),
            };
            out.push(v.wrapping_add(col.zero as i64));
        }
        Ok(out)
    }

    /// Character column (`rA`), trailing blanks and NULs removed.
    pub fn column_str(&self, hdu: &Hdu, name: &str) -> Result<Vec<String>, DataError> {
        let (col, rows, row_len) = self.column_of(hdu, name)?;
        if col.code != 'A' {
            return Err(self.err(format!("HDU {}: column {name} is not a character column", hdu.name)));
        }
        Ok((0..rows)
            .map(|r| {
                let start = hdu.data_offset + r * row_len + col.offset;
                String::from_utf8_lossy(&self.bytes[start..start + col.repeat])
                    .trim_end_matches(['\0', ' '])
                    .to_string()
            })
            .collect())
    }
}

impl Hdu {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.cards.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn float(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(|v| v.replace('D', "E").parse().ok())
    }
}
