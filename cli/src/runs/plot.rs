//! Metric curves of several runs overlaid, as SVG and PNG, in pure Rust with no font or
//! graphics library: the SVG is written directly (text as `<text>`, rendered by the viewer);
//! the PNG is rasterised here (anti-aliased lines after Xiaolin Wu, a built-in 5×7 bitmap
//! font) and encoded with zlib from `flate2` (already a dependency through the HDF5 reader).

use std::fmt::Write as _;

/// One curve: a label and `(x, y)` points (x ascending).
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

const W: usize = 960;
const H: usize = 540;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 700.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 470.0;

/// Tableau-10 colours.
const COLOURS: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// 1-2-5 ticks covering `[lo, hi]`.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 0.5, lo + 0.5) };
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let start = (lo / step).floor() * step;
    let n = ((hi - start) / step - 1e-9).ceil().max(1.0) as usize;
    (0..=n)
        .map(|k| {
            let v = start + k as f64 * step;
            if v.abs() < step * 1e-9 { 0.0 } else { v }
        })
        .collect()
}

fn fmt_tick(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" { "0".into() } else { s.to_string() }
    }
}

struct Frame {
    x: (f64, f64),
    y: (f64, f64),
    xt: Vec<f64>,
    yt: Vec<f64>,
}

impl Chart {
    fn frame(&self) -> Frame {
        let pts = self.series.iter().flat_map(|s| s.points.iter()).filter(|(x, y)| x.is_finite() && y.is_finite());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        let xt = nice_ticks(x0, x1, 6);
        let yt = nice_ticks(y0, y1, 6);
        Frame { x: (xt[0], *xt.last().unwrap_or(&x1)), y: (yt[0], *yt.last().unwrap_or(&y1)), xt, yt }
    }

    fn map(f: &Frame, x: f64, y: f64) -> (f64, f64) {
        let sx = LEFT + (x - f.x.0) / (f.x.1 - f.x.0).max(1e-300) * (RIGHT - LEFT);
        let sy = BOTTOM - (y - f.y.0) / (f.y.1 - f.y.0).max(1e-300) * (BOTTOM - TOP);
        (sx, sy)
    }

    pub fn svg(&self) -> String {
        let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        let f = self.frame();
        let mut o = String::new();
        let _ = writeln!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="13">"#
        );
        let _ = writeln!(o, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            o,
            r#"<text x="{}" y="30" font-size="17" text-anchor="middle">{}</text>"#,
            (LEFT + RIGHT) / 2.0,
            esc(&self.title)
        );
        for &t in &f.yt {
            let (_, y) = Self::map(&f, f.x.0, t);
            let _ = writeln!(o, r##"<line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="#e5e5e5"/>"##);
            let _ =
                writeln!(o, r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#, LEFT - 8.0, y + 4.0, fmt_tick(t));
        }
        for &t in &f.xt {
            let (x, _) = Self::map(&f, t, f.y.0);
            let _ = writeln!(o, r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{BOTTOM}" stroke="#e5e5e5"/>"##);
            let _ =
                writeln!(o, r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#, BOTTOM + 20.0, fmt_tick(t));
        }
        let _ = writeln!(
            o,
            r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
            RIGHT - LEFT,
            BOTTOM - TOP
        );
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (LEFT + RIGHT) / 2.0,
            BOTTOM + 45.0,
            esc(&self.x_label)
        );
        let _ = writeln!(
            o,
            r#"<text x="22" y="{}" text-anchor="middle" transform="rotate(-90 22 {})">{}</text>"#,
            (TOP + BOTTOM) / 2.0,
            (TOP + BOTTOM) / 2.0,
            esc(&self.y_label)
        );
        for (i, s) in self.series.iter().enumerate() {
            let (r, g, b) = COLOURS[i % COLOURS.len()];
            let pts: Vec<String> = s
                .points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|&(x, y)| {
                    let (a, b) = Self::map(&f, x, y);
                    format!("{a:.1},{b:.1}")
                })
                .collect();
            let _ = writeln!(
                o,
                r#"<polyline class="series" fill="none" stroke="rgb({r},{g},{b})" stroke-width="2" points="{}"/>"#,
                pts.join(" ")
            );
            let ly = TOP + 10.0 + 22.0 * i as f64;
            let _ = writeln!(
                o,
                r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="rgb({r},{g},{b})" stroke-width="3"/>"#,
                RIGHT + 20.0,
                RIGHT + 45.0
            );
            let _ = writeln!(o, r#"<text x="{}" y="{}">{}</text>"#, RIGHT + 52.0, ly + 4.0, esc(&s.label));
        }
        o.push_str("</svg>\n");
        o
    }

    pub fn png(&self) -> Vec<u8> {
        let f = self.frame();
        let mut c = Canvas::new(W, H);
        c.text((LEFT + RIGHT) / 2.0, 22.0, &self.title, (0, 0, 0), true);
        for &t in &f.yt {
            let (_, y) = Self::map(&f, f.x.0, t);
            c.line(LEFT, y, RIGHT, y, (229, 229, 229));
            let label = fmt_tick(t);
            c.text(LEFT - 8.0 - 6.0 * label.len() as f64, y - 7.0, &label, (0, 0, 0), false);
        }
        for &t in &f.xt {
            let (x, _) = Self::map(&f, t, f.y.0);
            c.line(x, TOP, x, BOTTOM, (229, 229, 229));
            c.text(x, BOTTOM + 10.0, &fmt_tick(t), (0, 0, 0), true);
        }
        for (a, b, cc, d) in [
            (LEFT, TOP, RIGHT, TOP),
            (RIGHT, TOP, RIGHT, BOTTOM),
            (RIGHT, BOTTOM, LEFT, BOTTOM),
            (LEFT, BOTTOM, LEFT, TOP),
        ] {
            c.line(a, b, cc, d, (51, 51, 51));
        }
        c.text((LEFT + RIGHT) / 2.0, BOTTOM + 32.0, &self.x_label, (0, 0, 0), true);
        c.text(8.0, TOP - 20.0, &self.y_label, (0, 0, 0), false);
        for (i, s) in self.series.iter().enumerate() {
            let col = COLOURS[i % COLOURS.len()];
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|&(x, y)| Self::map(&f, x, y))
                .collect();
            for w in pts.windows(2) {
                // Two parallel anti-aliased lines: 2 px wide.
                c.line(w[0].0, w[0].1, w[1].0, w[1].1, col);
                c.line(w[0].0, w[0].1 + 0.8, w[1].0, w[1].1 + 0.8, col);
            }
            let ly = TOP + 10.0 + 22.0 * i as f64;
            for k in 0..3 {
                c.line(RIGHT + 20.0, ly + k as f64 - 1.0, RIGHT + 45.0, ly + k as f64 - 1.0, col);
            }
            // The legend column fits 17 characters of the bitmap font.
            let label: String = if s.label.chars().count() > 17 {
                s.label.chars().take(15).chain("..".chars()).collect()
            } else {
                s.label.clone()
            };
            c.text(RIGHT + 52.0, ly - 7.0, &label, (0, 0, 0), false);
        }
        c.encode_png()
    }
}

struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Self { w, h, px: vec![255; w * h * 3] }
    }

    fn blend(&mut self, x: i64, y: i64, (r, g, b): (u8, u8, u8), a: f64) {
        if x < 0 || y < 0 || x as usize >= self.w || y as usize >= self.h || a <= 0.0 {
            return;
        }
        let i = (y as usize * self.w + x as usize) * 3;
        let a = a.min(1.0);
        for (k, v) in [r, g, b].into_iter().enumerate() {
            let old = self.px[i + k] as f64;
            self.px[i + k] = (old + (v as f64 - old) * a).round() as u8;
        }
    }

    /// Xiaolin Wu's anti-aliased line.
    fn line(&mut self, mut x0: f64, mut y0: f64, mut x1: f64, mut y1: f64, col: (u8, u8, u8)) {
        let steep = (y1 - y0).abs() > (x1 - x0).abs();
        if steep {
            std::mem::swap(&mut x0, &mut y0);
            std::mem::swap(&mut x1, &mut y1);
        }
        if x0 > x1 {
            std::mem::swap(&mut x0, &mut x1);
            std::mem::swap(&mut y0, &mut y1);
        }
        let grad = if x1 - x0 == 0.0 { 1.0 } else { (y1 - y0) / (x1 - x0) };
        let mut y = y0 + grad * (x0.round() - x0);
        let mut x = x0.round() as i64;
        while x as f64 <= x1.round() {
            let (fy, frac) = (y.floor() as i64, y - y.floor());
            let mut plot = |px: i64, py: i64, a: f64| {
                if steep { self.blend(py, px, col, a) } else { self.blend(px, py, col, a) }
            };
            plot(x, fy, 1.0 - frac);
            plot(x, fy + 1, frac);
            y += grad;
            x += 1;
        }
    }

    /// 5×7 glyphs at scale 2 (12 px advance); `centred` centres on `x`.
    fn text(&mut self, x: f64, y: f64, s: &str, col: (u8, u8, u8), centred: bool) {
        let advance = 12.0;
        let x0 = if centred { x - advance * s.chars().count() as f64 / 2.0 } else { x };
        for (i, ch) in s.chars().enumerate() {
            let g = glyph(ch);
            for (row, bits) in g.iter().enumerate() {
                for colm in 0..5 {
                    if bits & (0x10 >> colm) != 0 {
                        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                            let px = (x0 + advance * i as f64) as i64 + 2 * colm as i64 + dx;
                            let py = y as i64 + 2 * row as i64 + dy;
                            self.blend(px, py, col, 1.0);
                        }
                    }
                }
            }
        }
    }

    fn encode_png(&self) -> Vec<u8> {
        encode_rgb_png(self.w, self.h, &self.px)
    }
}

/// An 8-bit RGB image (`w·h·3` bytes, row-major) as PNG.
pub fn encode_rgb_png(w: usize, h: usize, px: &[u8]) -> Vec<u8> {
    {
        use std::io::Write;
        fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut crc_input = kind.to_vec();
            crc_input.extend_from_slice(data);
            out.extend_from_slice(&crc_input);
            out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
        }
        let mut raw = Vec::with_capacity((w * 3 + 1) * h);
        for row in px.chunks(w * 3) {
            raw.push(0); // filter: none
            raw.extend_from_slice(row);
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&raw).expect("in-memory zlib");
        let idat = z.finish().expect("in-memory zlib");
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&(w as u32).to_be_bytes());
        ihdr.extend_from_slice(&(h as u32).to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
        chunk(&mut out, b"IHDR", &ihdr);
        chunk(&mut out, b"IDAT", &idat);
        chunk(&mut out, b"IEND", &[]);
        out
    }
}

/// CRC-32 (ISO 3309, as PNG requires).
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// A 5×7 bitmap font (rows top to bottom, bit 4 = leftmost column); unknown characters are
/// drawn as a box.
fn glyph(c: char) -> [u8; 7] {
    match c {
        ' ' => [0, 0, 0, 0, 0, 0, 0],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        ',' => [0, 0, 0, 0, 0x0C, 0x04, 0x08],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        '+' => [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        '_' => [0, 0, 0, 0, 0, 0, 0x1F],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '/' => [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        '=' => [0, 0, 0x1F, 0, 0x1F, 0, 0],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '[' => [0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E],
        ']' => [0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '→' | '>' => [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
        '<' => [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02],
        'a' => [0, 0, 0x0E, 0x01, 0x0F, 0x11, 0x0F],
        'b' => [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E],
        'c' => [0, 0, 0x0E, 0x10, 0x10, 0x11, 0x0E],
        'd' => [0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F],
        'e' => [0, 0, 0x0E, 0x11, 0x1F, 0x10, 0x0E],
        'f' => [0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08],
        'g' => [0, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E],
        'h' => [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11],
        'i' => [0x04, 0, 0x0C, 0x04, 0x04, 0x04, 0x0E],
        'j' => [0x02, 0, 0x06, 0x02, 0x02, 0x12, 0x0C],
        'k' => [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12],
        'l' => [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'm' => [0, 0, 0x1A, 0x15, 0x15, 0x11, 0x11],
        'n' => [0, 0, 0x16, 0x19, 0x11, 0x11, 0x11],
        'o' => [0, 0, 0x0E, 0x11, 0x11, 0x11, 0x0E],
        'p' => [0, 0, 0x1E, 0x11, 0x1E, 0x10, 0x10],
        'q' => [0, 0, 0x0D, 0x13, 0x0F, 0x01, 0x01],
        'r' => [0, 0, 0x16, 0x19, 0x10, 0x10, 0x10],
        's' => [0, 0, 0x0E, 0x10, 0x0E, 0x01, 0x1E],
        't' => [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06],
        'u' => [0, 0, 0x11, 0x11, 0x11, 0x13, 0x0D],
        'v' => [0, 0, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'w' => [0, 0, 0x11, 0x11, 0x15, 0x15, 0x0A],
        'x' => [0, 0, 0x11, 0x0A, 0x04, 0x0A, 0x11],
        'y' => [0, 0, 0x11, 0x11, 0x0F, 0x01, 0x0E],
        'z' => [0, 0, 0x1F, 0x02, 0x04, 0x08, 0x1F],
        'A' => [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        _ => [0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_1_2_5_and_cover_the_range() {
        assert_eq!(nice_ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]);
        let t = nice_ticks(2.31, 6.87, 6);
        assert!(t[0] <= 2.31 && *t.last().unwrap() >= 6.87 && t.len() <= 8, "{t:?}");
        assert_eq!(fmt_tick(0.6000000000000001), "0.6");
        assert_eq!(fmt_tick(250000.0), "2.5e5");
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        // The CRC-32 check value of "123456789" (ISO 3309 / PNG) is 0xCBF43926.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
