//! A small FITS reader for the subset survey products use: header cards, image HDUs
//! (BITPIX 8/16/32/64/−32/−64 with BSCALE/BZERO) and binary tables (TFORM L, B, I, J, K, E, D,
//! A with repeat counts, TSCAL/TZERO), as defined by the FITS Standard 4.0 (Pence et al. 2010,
//! A&A 524, A42; IAU FITS Working Group 2018). Whole-file read. Every structural keyword is
//! range-checked and every size computed with checked arithmetic against the file length, so a
//! truncated or corrupt file is an error naming the HDU and keyword, never a panic or a huge
//! allocation (exercised by `tests/fuzz.rs`).
//!
//! Why not a crate: `fitsrs` 0.4 targets images (its binary-table support is "basic" and has no
//! column-by-name access) and `fitsio` needs cfitsio built from C; these ~300 lines cover the
//! DESI, SDSS and Legacy Survey products and are tested against astropy on real files.

use std::path::{Path, PathBuf};

use super::DataError;

const BLOCK: usize = 2880;
const FORMAT: &str = "FITS";

/// FITS limits (Standard 4.0 §4.4.1): at most 999 axes and 999 table fields.
const MAX_AXES: i64 = 999;
const MAX_FIELDS: i64 = 999;

#[derive(Debug, Clone)]
pub struct Hdu {
    pub index: usize,
    /// EXTNAME, or `PRIMARY` for the first HDU without one.
    pub name: String,
    pub cards: Vec<(String, String)>,
    /// BITPIX, checked to be one of 8, 16, 32, 64, −32, −64.
    bitpix: i64,
    /// NAXIS1 … NAXISn (FITS order: fastest axis first), each checked ≥ 0.
    axes: Vec<usize>,
    pcount: usize,
    gcount: usize,
    data_offset: usize,
    /// Bytes of data; with the offset, checked to lie inside the file.
    data_len: usize,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// TFORM type letter.
    pub code: char,
    pub repeat: usize,
    /// Bytes per element of `code` (0 for the bit array `X`).
    pub width: usize,
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

/// A header's structural keywords, each checked against the standard's ranges.
struct Structure {
    bitpix: i64,
    axes: Vec<usize>,
    pcount: usize,
    gcount: usize,
    data_len: usize,
}

fn structure(cards: &[(String, String)], index: usize) -> Result<Structure, String> {
    let get = |k: &str| cards.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let int = |k: &str, default: Option<i64>| -> Result<i64, String> {
        match get(k) {
            None => default.ok_or_else(|| format!("HDU {index}: missing required keyword {k}")),
            Some(v) => v.parse::<i64>().map_err(|_| format!("HDU {index}: keyword {k} = {v:?} is not an integer")),
        }
    };
    let bitpix = int("BITPIX", None)?;
    if ![8, 16, 32, 64, -32, -64].contains(&bitpix) {
        return Err(format!("HDU {index}: BITPIX = {bitpix}; FITS allows 8, 16, 32, 64, -32 or -64"));
    }
    let naxis = int("NAXIS", None)?;
    if !(0..=MAX_AXES).contains(&naxis) {
        return Err(format!("HDU {index}: NAXIS = {naxis}; FITS allows 0 to {MAX_AXES} axes"));
    }
    let mut axes = Vec::with_capacity(naxis as usize);
    for a in 1..=naxis {
        let n = int(&format!("NAXIS{a}"), None)?;
        let n = usize::try_from(n).map_err(|_| format!("HDU {index}: NAXIS{a} = {n} is negative"))?;
        axes.push(n);
    }
    let count = |k: &str, default: i64| -> Result<usize, String> {
        let v = int(k, Some(default))?;
        usize::try_from(v).map_err(|_| format!("HDU {index}: {k} = {v} is negative"))
    };
    let (pcount, gcount) = (count("PCOUNT", 0)?, count("GCOUNT", 1)?);
    // Standard §4.4.1.1: Nbits = |BITPIX| × GCOUNT × (PCOUNT + NAXIS1 × … × NAXISm).
    let overflow = || format!("HDU {index}: the declared data size (NAXISn, PCOUNT, GCOUNT) overflows");
    let pixels = if axes.is_empty() {
        0
    } else {
        axes.iter().try_fold(1usize, |acc, &n| acc.checked_mul(n)).ok_or_else(overflow)?
    };
    let data_len = pixels
        .checked_add(pcount)
        .and_then(|v| v.checked_mul(gcount))
        .and_then(|v| v.checked_mul(bitpix.unsigned_abs() as usize / 8))
        .ok_or_else(overflow)?;
    Ok(Structure { bitpix, axes, pcount, gcount, data_len })
}

impl FitsFile {
    pub fn open(path: &Path) -> Result<Self, DataError> {
        Self::from_bytes(path, super::read_regular(path)?)
    }

    /// Parses every HDU's header. Each header must be printable-ASCII cards ending in `END`,
    /// its declared data must lie inside the file, and what follows an HDU must be another
    /// extension or padding: a damaged HDU is an error naming it, never a silently shorter file.
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
                if bytes.len() - pos < BLOCK {
                    return Err(err(format!(
                        "HDU {index}: header has no END card before the end of the file (truncated or corrupt)"
                    )));
                }
                let block = &bytes[pos..pos + BLOCK];
                if let Some(bad) = block.iter().position(|b| !(0x20..=0x7e).contains(b)) {
                    return Err(err(format!(
                        "HDU {index}: header byte at offset {} is not printable ASCII; the header is corrupt \
                         or its END card is missing",
                        pos + bad
                    )));
                }
                for card in block.chunks(80) {
                    // Printable ASCII, so every byte offset is a char boundary.
                    let text = std::str::from_utf8(card).unwrap_or("");
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
            let s = structure(&cards, index).map_err(err)?;
            let get = |k: &str| cards.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
            let name = get("EXTNAME")
                .map(str::to_string)
                .unwrap_or_else(|| if index == 0 { "PRIMARY".to_string() } else { format!("HDU{index}") });
            if s.data_len > bytes.len() - pos {
                return Err(err(format!(
                    "HDU {index} ({name}) needs {} data bytes at offset {pos}, but the file ends at {}; \
                     the file is truncated — download it again",
                    s.data_len,
                    bytes.len()
                )));
            }
            hdus.push(Hdu {
                index,
                name,
                cards,
                bitpix: s.bitpix,
                axes: s.axes,
                pcount: s.pcount,
                gcount: s.gcount,
                data_offset: pos,
                data_len: s.data_len,
            });
            // data_len ≤ bytes.len() - pos, so the padded end cannot overflow.
            pos = pos.saturating_add(s.data_len.div_ceil(BLOCK).saturating_mul(BLOCK));
            if pos < bytes.len() && !bytes[pos..].starts_with(b"XTENSION=") {
                // Zero or blank padding may end a file; anything else is a damaged extension.
                if bytes[pos..].iter().all(|&b| b == 0 || b == b' ') {
                    break;
                }
                return Err(err(format!(
                    "the bytes after HDU {index} ({}) at offset {pos} are neither an XTENSION header nor \
                     padding: HDU {} is damaged (the file holds {} bytes)",
                    hdus[index].name,
                    index + 1,
                    bytes.len()
                )));
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
    /// The values always number the shape's product.
    pub fn image(&self, hdu: &Hdu) -> Result<(Vec<usize>, Vec<f64>), DataError> {
        if hdu.get("XTENSION").is_some_and(|x| x != "IMAGE") {
            return Err(self.err(format!("HDU {} is a {}, not an image", hdu.name, hdu.get("XTENSION").unwrap_or(""))));
        }
        if hdu.pcount != 0 || hdu.gcount != 1 {
            return Err(self.err(format!(
                "HDU {}: PCOUNT = {}, GCOUNT = {}; an image HDU has PCOUNT = 0 and GCOUNT = 1",
                hdu.name, hdu.pcount, hdu.gcount
            )));
        }
        let mut shape = hdu.axes.clone();
        shape.reverse();
        let scale = hdu.float("BSCALE").unwrap_or(1.0);
        let zero = hdu.float("BZERO").unwrap_or(0.0);
        let data = self.data(hdu);
        let values: Vec<f64> = match hdu.bitpix {
            8 => data.iter().map(|&b| b as f64).collect(),
            16 => data.chunks_exact(2).map(|c| i16::from_be_bytes([c[0], c[1]]) as f64).collect(),
            32 => data.chunks_exact(4).map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f64).collect(),
            64 => data.chunks_exact(8).map(|c| i64::from_be_bytes(be8(c)) as f64).collect(),
            -32 => data.chunks_exact(4).map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f64).collect(),
            -64 => data.chunks_exact(8).map(|c| f64::from_be_bytes(be8(c))).collect(),
            other => return Err(self.err(format!("HDU {}: unsupported BITPIX {other}", hdu.name))),
        };
        // structure() made data_len = |BITPIX|/8 × ∏ NAXISn, so this holds; kept as a guard.
        let expected = if shape.is_empty() { 0 } else { shape.iter().product::<usize>() };
        if values.len() != expected {
            return Err(self.err(format!(
                "HDU {}: {} values for shape {shape:?} ({expected} expected)",
                hdu.name,
                values.len()
            )));
        }
        let values =
            if scale != 1.0 || zero != 0.0 { values.into_iter().map(|v| v * scale + zero).collect() } else { values };
        Ok((shape, values))
    }

    fn data(&self, hdu: &Hdu) -> &[u8] {
        // Checked against the file length when the header was parsed.
        &self.bytes[hdu.data_offset..hdu.data_offset + hdu.data_len]
    }

    /// Binary-table columns of `hdu` and its row count. The columns are checked to tile the
    /// row (NAXIS1) exactly and the rows to fit in the HDU's data.
    pub fn columns(&self, hdu: &Hdu) -> Result<(Vec<Column>, usize), DataError> {
        if hdu.get("XTENSION") != Some("BINTABLE") {
            return Err(self.err(format!("HDU {} is not a binary table", hdu.name)));
        }
        let (row_len, rows) = match hdu.axes.as_slice() {
            [row_len, rows] => (*row_len, *rows),
            other => {
                return Err(self.err(format!(
                    "HDU {}: a binary table has NAXIS = 2, this one {}",
                    hdu.name,
                    other.len()
                )));
            }
        };
        if hdu.bitpix != 8 {
            return Err(self.err(format!("HDU {}: a binary table has BITPIX = 8, not {}", hdu.name, hdu.bitpix)));
        }
        let nfields = match hdu.get("TFIELDS").map(|v| v.parse::<i64>()) {
            None => 0,
            Some(Ok(n)) if (0..=MAX_FIELDS).contains(&n) => n as usize,
            Some(_) => {
                return Err(self.err(format!(
                    "HDU {}: TFIELDS = {:?}; FITS allows 0 to {MAX_FIELDS}",
                    hdu.name,
                    hdu.get("TFIELDS").unwrap_or("")
                )));
            }
        };
        let mut cols = Vec::with_capacity(nfields);
        let mut offset = 0usize;
        for i in 1..=nfields {
            let tform = hdu.get(&format!("TFORM{i}")).unwrap_or("").trim().to_string();
            let digits: String = tform.chars().take_while(|c| c.is_ascii_digit()).collect();
            let repeat: usize = if digits.is_empty() {
                1
            } else {
                digits.parse().map_err(|_| {
                    self.err(format!("HDU {}: column {i} has a repeat count too large in TFORM {tform:?}", hdu.name))
                })?
            };
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
            let bytes = if code == 'X' { Some(repeat.div_ceil(8)) } else { repeat.checked_mul(width) };
            let end = bytes.and_then(|b| offset.checked_add(b)).ok_or_else(|| {
                self.err(format!("HDU {}: column {i} (TFORM {tform:?}) is wider than any row can be", hdu.name))
            })?;
            cols.push(Column {
                name: hdu.get(&format!("TTYPE{i}")).unwrap_or("").to_string(),
                code,
                repeat,
                width,
                offset,
                scale: hdu.float(&format!("TSCAL{i}")).unwrap_or(1.0),
                zero: hdu.float(&format!("TZERO{i}")).unwrap_or(0.0),
            });
            offset = end;
        }
        if offset != row_len {
            return Err(self.err(format!("HDU {}: columns span {offset} bytes but NAXIS1 = {row_len}", hdu.name)));
        }
        // data_len = NAXIS1 × NAXIS2 + PCOUNT (heap), so the rows fit; checked again here.
        if row_len.checked_mul(rows).is_none_or(|n| n > hdu.data_len) {
            return Err(self.err(format!(
                "HDU {}: {rows} rows of {row_len} bytes do not fit in its {} data bytes",
                hdu.name, hdu.data_len
            )));
        }
        Ok((cols, rows))
    }

    fn column_of(&self, hdu: &Hdu, name: &str) -> Result<(Column, usize, usize), DataError> {
        let (cols, rows) = self.columns(hdu)?;
        let row_len = hdu.axes[0];
        let col = cols
            .into_iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| self.err(format!("HDU {} has no column {name}", hdu.name)))?;
        Ok((col, rows, row_len))
    }

    pub fn has_column(&self, hdu: &Hdu, name: &str) -> bool {
        self.columns(hdu).is_ok_and(|(cols, _)| cols.iter().any(|c| c.name.eq_ignore_ascii_case(name)))
    }

    /// The cells of one column, row by row (each `repeat × width` bytes, inside its row).
    fn cells<'a>(
        &'a self,
        hdu: &'a Hdu,
        col: &'a Column,
        rows: usize,
        row_len: usize,
        width: usize,
    ) -> impl Iterator<Item = &'a [u8]> + 'a {
        let data = self.data(hdu);
        (0..rows).map(move |r| {
            let start = r * row_len + col.offset;
            &data[start..start + col.repeat * width]
        })
    }

    /// Numeric column as f64 (TSCAL/TZERO applied), `rows × repeat` values row-major.
    pub fn column_f64(&self, hdu: &Hdu, name: &str) -> Result<(Vec<f64>, usize), DataError> {
        let (col, rows, row_len) = self.column_of(hdu, name)?;
        if !"LBIJKED".contains(col.code) {
            return Err(self.err(format!("HDU {}: column {name} (TFORM {}) is not numeric", hdu.name, col.code)));
        }
        let width = col.width;
        let mut out = Vec::with_capacity(rows * col.repeat);
        for cell in self.cells(hdu, &col, rows, row_len, width) {
            for c in cell.chunks_exact(width) {
                let v = match col.code {
                    'L' => f64::from(u8::from(c[0] == b'T')),
                    'B' => c[0] as f64,
                    'I' => i16::from_be_bytes([c[0], c[1]]) as f64,
                    'J' => i32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f64,
                    'K' => i64::from_be_bytes(be8(c)) as f64,
                    'E' => f32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f64,
                    _ => f64::from_be_bytes(be8(c)),
                };
                out.push(v * col.scale + col.zero);
            }
        }
        Ok((out, col.repeat))
    }

    /// 64-bit integer column, exact (no f64 rounding; DESI TARGETIDs exceed 2^53). One value
    /// per row: a column with a repeat count other than 1 is refused.
    pub fn column_i64(&self, hdu: &Hdu, name: &str) -> Result<Vec<i64>, DataError> {
        let (col, rows, row_len) = self.column_of(hdu, name)?;
        if !"KJIB".contains(col.code) {
            return Err(self.err(format!("HDU {}: column {name} (TFORM {}) is not an integer", hdu.name, col.code)));
        }
        let width = col.width;
        if col.repeat != 1 {
            return Err(self.err(format!(
                "HDU {}: column {name} holds {} values per row; one integer per row was expected",
                hdu.name, col.repeat
            )));
        }
        if col.scale != 1.0 || col.zero.fract() != 0.0 || col.zero.abs() >= 9.2e18 {
            return Err(self.err(format!(
                "HDU {}: column {name} has TSCAL = {} / TZERO = {}; only an integer offset below 2^63 is \
                 read exactly",
                hdu.name, col.scale, col.zero
            )));
        }
        let zero = col.zero as i64;
        self.cells(hdu, &col, rows, row_len, width)
            .map(|c| {
                let v = match width {
                    8 => i64::from_be_bytes(be8(c)),
                    4 => i32::from_be_bytes([c[0], c[1], c[2], c[3]]) as i64,
                    2 => i16::from_be_bytes([c[0], c[1]]) as i64,
                    _ => c[0] as i64,
                };
                v.checked_add(zero).ok_or_else(|| {
                    self.err(format!("HDU {}: column {name}: {v} + TZERO {zero} overflows a 64-bit integer", hdu.name))
                })
            })
            .collect()
    }

    /// Character column (`rA`), trailing blanks and NULs removed.
    pub fn column_str(&self, hdu: &Hdu, name: &str) -> Result<Vec<String>, DataError> {
        let (col, rows, row_len) = self.column_of(hdu, name)?;
        if col.code != 'A' {
            return Err(self.err(format!("HDU {}: column {name} is not a character column", hdu.name)));
        }
        Ok(self
            .cells(hdu, &col, rows, row_len, 1)
            .map(|c| String::from_utf8_lossy(c).trim_end_matches(['\0', ' ']).to_string())
            .collect())
    }
}

fn be8(c: &[u8]) -> [u8; 8] {
    [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]
}

impl Hdu {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.cards.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn float(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(|v| v.replace('D', "E").parse().ok())
    }
}
