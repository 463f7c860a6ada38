//! The `--where` / `--order` language of `astroclip runs list`, compiled to SQL.
//!
//! ```text
//! where  := cond ("and" cond)*
//! cond   := field op value
//! field  := params.<key> | tags.<key> | metrics.<key>[.last|.min|.max|.count][[<context parts>]]
//!         | status | experiment | name | data_hash | git_commit | start_ms | end_ms   (also as attributes.<name>)
//! op     := = | != | < | <= | > | >= | ~          (~: contains)
//! value  := number | 'text' | "text" | bare-word
//! order  := [-]field                               (- : descending)
//! ```
//! e.g. `params.loss.logit_scale = 15.5 and metrics.eval.r2.redshift[source=image] > 0.5`.
//! A number compares numerically (params are stored as text and cast), anything else as text.
//! A run without the field never matches. Values travel as SQL binds; field names only select
//! among fixed SQL fragments.

use crate::Dialect;

/// A bound SQL value.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    Real(f64),
}

/// A field as a scalar SQL expression over the run row `r` (and `e`, its experiment).
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub label: String,
    pub sql: String,
    pub binds: Vec<Bind>,
    pub numeric: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    /// `AND`-joined conditions (empty: no filter).
    pub conditions: Vec<(String, Vec<Bind>)>,
    /// Fields named by the query or the order, shown as columns.
    pub fields: Vec<Field>,
    pub order: Option<(Field, bool)>,
}

const ATTRIBUTES: [(&str, &str, bool); 7] = [
    ("status", "r.status", false),
    ("experiment", "e.name", false),
    ("name", "r.name", false),
    ("data_hash", "r.data_hash", false),
    ("git_commit", "r.git_commit", false),
    ("start_ms", "r.start_ms", true),
    ("end_ms", "r.end_ms", true),
];

fn bad(what: impl Into<String>) -> String {
    format!(
        "{}; fields are params.<key>, tags.<key>, metrics.<key>[.last|.min|.max|.count][[context]], or status, experiment, \
         name, data_hash, git_commit, start_ms, end_ms; operators = != < <= > >= ~; conditions joined by `and`",
        what.into()
    )
}

pub fn field(text: &str, dialect: Dialect) -> Result<Field, String> {
    let t = text.trim();
    let attr = t.strip_prefix("attributes.").unwrap_or(t);
    if let Some((name, sql, numeric)) = ATTRIBUTES.iter().find(|(n, _, _)| *n == attr) {
        return Ok(Field { label: name.to_string(), sql: sql.to_string(), binds: vec![], numeric: *numeric });
    }
    if let Some(key) = t.strip_prefix("params.").filter(|k| !k.is_empty()) {
        return Ok(Field {
            label: t.to_string(),
            sql: "(SELECT value FROM params WHERE run_id = r.id AND key = ?)".into(),
            binds: vec![Bind::Text(key.into())],
            numeric: false,
        });
    }
    if let Some(key) = t.strip_prefix("tags.").filter(|k| !k.is_empty()) {
        return Ok(Field {
            label: t.to_string(),
            sql: "(SELECT value FROM tags WHERE run_id = r.id AND key = ?)".into(),
            binds: vec![Bind::Text(key.into())],
            numeric: false,
        });
    }
    if let Some(rest) = t.strip_prefix("metrics.").filter(|k| !k.is_empty()) {
        let (rest, context) = match rest.split_once('[') {
            Some((k, c)) => {
                let c = c.strip_suffix(']').ok_or_else(|| bad(format!("`{t}`: unclosed `[`")))?;
                (k, Some(c.to_string()))
            }
            None => (rest, None),
        };
        let (key, agg) = match rest.rsplit_once('.') {
            Some((k, a @ ("last" | "min" | "max" | "count"))) => (k, a),
            _ => (rest, "last"),
        };
        // A context is comma-separated `k=v` parts; `[source=image]` matches whole parts only
        // (not `source=image→spectrum`).
        let parts: Vec<String> =
            context.iter().flat_map(|c| c.split(',')).map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect();
        let ctx = format!(" AND {}", dialect.contains("(',' || context || ',')")).repeat(parts.len());
        let sql = match agg {
            "last" => format!(
                "(SELECT value FROM metrics WHERE run_id = r.id AND key = ?{ctx} ORDER BY step DESC, {seq} DESC LIMIT 1)",
                seq = dialect.seq()
            ),
            a => format!("(SELECT {}(value) FROM metrics WHERE run_id = r.id AND key = ?{ctx})", a.to_uppercase()),
        };
        let mut binds = vec![Bind::Text(key.into())];
        binds.extend(parts.iter().map(|p| Bind::Text(format!(",{p},"))));
        return Ok(Field { label: t.to_string(), sql, binds, numeric: true });
    }
    Err(bad(format!("unknown field `{t}`")))
}

fn tokens(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' || c == '"' {
            chars.next();
            let mut v = String::from("\u{0}");
            loop {
                match chars.next() {
                    Some(x) if x == c => break,
                    Some(x) => v.push(x),
                    None => return Err(bad(format!("unterminated quote in `{s}`"))),
                }
            }
            out.push(v);
        } else if "=!<>~".contains(c) {
            let mut op = String::new();
            while let Some(&x) = chars.peek().filter(|x| "=!<>~".contains(**x)) {
                op.push(x);
                chars.next();
            }
            out.push(op);
        } else {
            let mut w = String::new();
            let mut depth = 0;
            while let Some(&x) = chars.peek() {
                if depth == 0 && (x.is_whitespace() || "=!<>~".contains(x)) {
                    break;
                }
                depth += (x == '[') as i32 - (x == ']') as i32;
                w.push(x);
                chars.next();
            }
            out.push(w);
        }
    }
    Ok(out)
}

pub fn compile(filter: Option<&str>, order: Option<&str>, dialect: Dialect) -> Result<Compiled, String> {
    let mut c = Compiled { conditions: vec![], fields: vec![], order: None };
    if let Some(f) = filter.filter(|f| !f.trim().is_empty()) {
        let toks = tokens(f)?;
        let mut i = 0;
        while i < toks.len() {
            if i > 0 {
                if !toks[i].eq_ignore_ascii_case("and") {
                    return Err(bad(format!("expected `and` before `{}`", toks[i])));
                }
                i += 1;
            }
            let (Some(name), Some(op), Some(value)) = (toks.get(i), toks.get(i + 1), toks.get(i + 2)) else {
                return Err(bad(format!("incomplete condition at `{}`", toks[i..].join(" "))));
            };
            let fl = field(name, dialect)?;
            let sql_op = match op.as_str() {
                "=" | "==" => "=",
                "!=" => "!=",
                "<" | "<=" | ">" | ">=" => op.as_str(),
                "~" => "LIKE",
                o => return Err(bad(format!("unknown operator `{o}`"))),
            };
            let quoted = value.starts_with('\u{0}');
            let raw = value.trim_start_matches('\u{0}').to_string();
            let number = if quoted { None } else { raw.parse::<f64>().ok() };
            let mut binds = fl.binds.clone();
            let sql = match (sql_op, number) {
                ("LIKE", _) => {
                    binds.push(Bind::Text(raw));
                    dialect.contains(&format!("CAST({} AS TEXT)", fl.sql))
                }
                (op, Some(x)) => {
                    binds.push(Bind::Real(x));
                    format!("{} {op} ? AND {} IS NOT NULL", dialect.number(&fl.sql), fl.sql)
                }
                (op, None) => {
                    binds.push(Bind::Text(raw));
                    format!("CAST({} AS TEXT) {op} ?", fl.sql)
                }
            };
            // The second copy of the field's SQL (IS NOT NULL) needs its binds again.
            if number.is_some() && sql_op != "LIKE" {
                let extra = fl.binds.clone();
                binds.extend(extra);
            }
            c.conditions.push((sql, binds));
            if !c.fields.iter().any(|f| f.label == fl.label) {
                c.fields.push(fl);
            }
            i += 3;
        }
    }
    if let Some(o) = order.filter(|o| !o.trim().is_empty()) {
        let (desc, name) = match o.trim().strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, o.trim()),
        };
        let fl = field(name, dialect)?;
        if !c.fields.iter().any(|f| f.label == fl.label) {
            c.fields.push(fl.clone());
        }
        c.order = Some((fl, desc));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_operators_and_values() {
        let c = compile(
            Some("params.loss.logit_scale = 15.5 and metrics.eval.r2.redshift.max[source=image] > 0.5 and status = 'finished'"),
            Some("-metrics.train.loss"),
            Dialect::Sqlite,
        )
        .unwrap();
        assert_eq!(c.conditions.len(), 3);
        assert!(c.conditions[0].0.starts_with("CAST((SELECT value FROM params"), "{}", c.conditions[0].0);
        assert_eq!(c.conditions[0].1[0], Bind::Text("loss.logit_scale".into()));
        assert_eq!(c.conditions[0].1[1], Bind::Real(15.5));
        assert!(
            c.conditions[1].0.contains("MAX(value)")
                && c.conditions[1].0.contains("instr((',' || context || ','), ?) > 0")
        );
        assert_eq!(c.conditions[1].1[1], Bind::Text(",source=image,".into()));
        assert_eq!(c.conditions[2], ("CAST(r.status AS TEXT) = ?".into(), vec![Bind::Text("finished".into())]));
        let (f, desc) = c.order.unwrap();
        assert!(desc && f.label == "metrics.train.loss");
        assert_eq!(c.fields.len(), 4);
    }

    #[test]
    fn errors_name_the_problem() {
        for (q, want) in [
            ("paramz.x = 1", "unknown field `paramz.x`"),
            ("params.x == ", "incomplete condition"),
            ("params.x = 1 or status = failed", "expected `and` before `or`"),
            ("params.x <> 1", "unknown operator `<>`"),
            ("name = 'abc", "unterminated quote"),
        ] {
            let e = compile(Some(q), None, Dialect::Sqlite).unwrap_err();
            assert!(e.contains(want), "{q}: {e}");
        }
    }
}
