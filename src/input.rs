//! Reading hand-written or received files: JSON or TOML text → a JSON value, and a value → a
//! typed struct, every error a [`Problem`] with the path of the offending value.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::problem::{Problem, Problems};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Toml,
}

impl Format {
    /// TOML for `.toml` files, JSON otherwise.
    pub fn of_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("toml") => Format::Toml,
            _ => Format::Json,
        }
    }
}

/// The largest settings file read: hand-written, a few KiB.
pub const MAX_SETTINGS_BYTES: u64 = 1 << 20;
/// The largest monitoring document read by default (`limits.max_document_bytes`): 200,000
/// services take about 40 MiB.
pub const DEFAULT_MAX_DOCUMENT_BYTES: u64 = 128 << 20;

/// The file's text, refused past `limit` bytes (`/dev/zero` is not a document) and without a
/// UTF-8 byte-order mark (some editors write one; JSON and TOML have no place for it).
pub fn read(path: &Path, limit: u64, limit_name: &str) -> Result<String, Problems> {
    use std::io::Read as _;
    let io = |e: std::io::Error| {
        Problems(vec![Problem::new(
            "io",
            "",
            format!("cannot read {}: {e}", path.display()),
        )])
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(Problems(vec![Problem::new(
            "too_large",
            "",
            format!("{} is larger than {limit} bytes ({limit_name})", path.display()),
        )]));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        Problems(vec![Problem::new(
            "io",
            "",
            format!("{} is not UTF-8 text: {e}", path.display()),
        )])
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// The text as JSON: JSON as it is, TOML converted (hand-written TOML files are small).
pub fn as_json_text(text: &str, format: Format) -> Result<std::borrow::Cow<'_, str>, Problems> {
    match format {
        Format::Json => Ok(std::borrow::Cow::Borrowed(text)),
        Format::Toml => Ok(std::borrow::Cow::Owned(parse(text, Format::Toml)?.to_string())),
    }
}

/// A JSON syntax error as a problem: the position in the path, the message without it.
pub fn json_syntax(e: &serde_json::Error) -> Problems {
    syntax(
        format!("line {} column {}", e.line(), e.column()),
        strip_position(&e.to_string()),
    )
}

pub fn parse(text: &str, format: Format) -> Result<Value, Problems> {
    match format {
        Format::Json => serde_json::from_str::<Value>(text).map_err(|e| {
            syntax(
                format!("line {} column {}", e.line(), e.column()),
                strip_position(&e.to_string()),
            )
        }),
        Format::Toml => {
            let table = toml::from_str::<toml::Table>(text).map_err(|e| {
                // The error's own Display quotes the offending source line, which may hold a
                // secret: keep only the message and the position.
                let at = e.span().map(|s| line_col(text, s.start)).unwrap_or_default();
                syntax(at, e.message().trim().to_string())
            })?;
            Ok(toml_to_json(toml::Value::Table(table)))
        }
    }
}

/// Deserializes `value`, naming the offending value's path below `at` on error.
pub fn typed<T: DeserializeOwned>(value: Value, at: &str) -> Result<T, Problem> {
    serde_path_to_error::deserialize(value).map_err(|e| at_path(e, at))
}

/// Deserializes a JSON text, naming the offending value's path below `at` on error. When
/// `text` is a slice of `file` (the document as written), the position is the one in the file;
/// otherwise (TOML read as JSON) there is no position worth giving, only the path.
pub fn typed_str<'de, T: serde::Deserialize<'de>>(text: &'de str, at: &str, file: Option<&str>) -> Result<T, Problem> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let (line, column) = (e.inner().line(), e.inner().column());
        let mut problem = at_path(e, at);
        problem.message = strip_position(&problem.message);
        if let Some(start) = file.and_then(|f| offset_in(f, text))
            && line > 0
        {
            let (base_line, base_column) = line_col_of(file.unwrap_or_default(), start);
            let (line, column) = if line == 1 {
                (base_line, base_column + column - 1)
            } else {
                (base_line + line - 1, column)
            };
            problem.message = format!("{} at line {line} column {column}", problem.message);
        }
        problem
    })
}

/// Where `part` starts in `whole`, when it is a slice of it.
fn offset_in(whole: &str, part: &str) -> Option<usize> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (start + part.len() <= whole.len()).then_some(start)
}

fn at_path<E: std::fmt::Display>(e: serde_path_to_error::Error<E>, at: &str) -> Problem {
    let inner = e.path().to_string();
    let path = match (at.is_empty(), inner.as_str()) {
        (_, ".") => at.to_string(),
        (true, _) => inner,
        (false, _) => format!("{at}.{inner}"),
    };
    Problem::new("invalid_field", path, e.into_inner().to_string())
}

fn syntax(path: String, message: String) -> Problems {
    Problems(vec![Problem::new("syntax", path, message)])
}

/// serde_json ends its messages with " at line L column C", which is already in the path.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn line_col(text: &str, offset: usize) -> String {
    let (line, col) = line_col_of(text, offset);
    format!("line {line} column {col}")
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col_of(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn toml_to_json(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => Value::Bool(b),
        // An unquoted TOML date (`date = 2026-12-25`) is read as the string it looks like.
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect()),
    }
}
