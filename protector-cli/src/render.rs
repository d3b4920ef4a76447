//! Output of every command: `-f table|json|yaml|value` and `-c COLUMN`.
//!
//! A command produces a [`View`]: either one record (rendered as the documented
//! `Field | Value` table) or a list (rendered with one column per field), plus an
//! optional note printed after the table (the unplanned-failover warning, the sync
//! status line).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// Output formats of `-f`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables with `+----+` borders.
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
    /// Bare values, one row per line.
    Value,
}

/// Width at which long JSON values wrap inside a table cell.
pub const WRAP_WIDTH: usize = 45;

/// What a command prints.
#[derive(Clone, Debug, PartialEq)]
pub enum View {
    /// One record: ordered fields.
    Record {
        /// `(field, value)` in display order.
        fields: Vec<(String, Value)>,
        /// Printed after the table (table format only).
        note: Option<String>,
    },
    /// Rows under headers.
    List {
        /// Column keys (used by json/yaml and `-c`).
        keys: Vec<String>,
        /// Column headers of the table.
        headers: Vec<String>,
        /// Rows, one value per key.
        rows: Vec<Vec<Value>>,
    },
    /// Nothing to print.
    Empty,
}

impl View {
    /// A record without note.
    pub fn record(fields: Vec<(&str, Value)>) -> Self {
        View::Record {
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            note: None,
        }
    }

    /// The same view with a note after the table.
    pub fn with_note(self, text: impl Into<String>) -> Self {
        match self {
            View::Record { fields, .. } => View::Record {
                fields,
                note: Some(text.into()),
            },
            other => other,
        }
    }

    fn select(self, columns: &[String]) -> Result<Self, String> {
        if columns.is_empty() {
            return Ok(self);
        }
        match self {
            View::Record { fields, note } => {
                let mut out = Vec::new();
                for c in columns {
                    let f = fields
                        .iter()
                        .find(|(k, _)| k == c)
                        .ok_or_else(|| format!("no such column: {c}"))?;
                    out.push(f.clone());
                }
                Ok(View::Record { fields: out, note })
            }
            View::List {
                keys,
                headers,
                rows,
            } => {
                let mut idx = Vec::new();
                for c in columns {
                    let i = keys
                        .iter()
                        .zip(&headers)
                        .position(|(k, h)| k == c || h == c)
                        .ok_or_else(|| format!("no such column: {c}"))?;
                    idx.push(i);
                }
                Ok(View::List {
                    keys: idx.iter().map(|&i| keys[i].clone()).collect(),
                    headers: idx.iter().map(|&i| headers[i].clone()).collect(),
                    rows: rows
                        .into_iter()
                        .map(|r| idx.iter().map(|&i| r[i].clone()).collect())
                        .collect(),
                })
            }
            View::Empty => Ok(View::Empty),
        }
    }

    /// Renders in `format`, keeping only `columns` when given.
    ///
    /// # Errors
    /// An unknown column; a serialisation failure.
    pub fn render(self, format: Format, columns: &[String]) -> Result<String, String> {
        let view = self.select(columns)?;
        match format {
            Format::Table => Ok(render_table(&view)),
            Format::Value => Ok(render_value(&view)),
            Format::Json => {
                let v = view.to_json();
                serde_json::to_string_pretty(&v)
                    .map(|s| s + "\n")
                    .map_err(|e| e.to_string())
            }
            Format::Yaml => serde_yaml_ng::to_string(&view.to_json()).map_err(|e| e.to_string()),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            View::Record { fields, .. } => {
                Value::Object(fields.iter().cloned().collect::<Map<String, Value>>())
            }
            View::List { keys, rows, .. } => Value::Array(
                rows.iter()
                    .map(|r| {
                        Value::Object(
                            keys.iter()
                                .cloned()
                                .zip(r.iter().cloned())
                                .collect::<Map<String, Value>>(),
                        )
                    })
                    .collect(),
            ),
            View::Empty => Value::Null,
        }
    }
}

/// A timestamp as the documentation prints it: `2025-03-15T09:00:12Z`.
pub fn timestamp(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// An optional timestamp (`null` when absent).
pub fn opt_timestamp(t: Option<&DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(timestamp(t)))
}

/// JSON on one line with the documentation's spacing (`["a", "b"]`, `{"k": "v"}`).
pub fn inline_json(v: &Value) -> String {
    match v {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(inline_json).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), inline_json(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// The text of a cell: strings bare, null empty, arrays/objects as inline JSON.
pub fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => inline_json(other),
    }
}

/// Splits a cell into lines: JSON arrays/objects wrap at spaces after `WRAP_WIDTH`.
fn cell_lines(v: &Value) -> Vec<String> {
    let text = cell_text(v);
    let mut lines: Vec<String> = Vec::new();
    for raw in text.lines() {
        if !matches!(v, Value::Array(_) | Value::Object(_)) || raw.chars().count() <= WRAP_WIDTH {
            lines.push(raw.to_owned());
            continue;
        }
        let mut current = String::new();
        for word in raw.split(' ') {
            let candidate_len = current.chars().count() + 1 + word.chars().count();
            if !current.is_empty() && candidate_len > WRAP_WIDTH {
                lines.push(std::mem::take(&mut current));
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
        lines.push(current);
    }
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}

/// A `+----+` table with one header row; each row is a list of multi-line cells.
pub fn table(headers: &[String], rows: &[Vec<Vec<String>>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            for line in cell {
                widths[i] = widths[i].max(line.chars().count());
            }
        }
    }
    let rule = format!(
        "+{}+\n",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    let line = |cells: Vec<&str>| {
        let mut s = String::from("|");
        for (i, c) in cells.iter().enumerate() {
            s.push(' ');
            s.push_str(c);
            s.push_str(&" ".repeat(widths[i] - c.chars().count() + 1));
            s.push('|');
        }
        s.push('\n');
        s
    };
    let mut out = rule.clone();
    out.push_str(&line(headers.iter().map(String::as_str).collect()));
    out.push_str(&rule);
    for row in rows {
        let height = row.iter().map(Vec::len).max().unwrap_or(1);
        for l in 0..height {
            out.push_str(&line(
                row.iter()
                    .map(|cell| cell.get(l).map_or("", String::as_str))
                    .collect(),
            ));
        }
    }
    out.push_str(&rule);
    out
}

fn render_table(view: &View) -> String {
    match view {
        View::Record { fields, note } => {
            let rows: Vec<Vec<Vec<String>>> = fields
                .iter()
                .map(|(k, v)| vec![vec![k.clone()], cell_lines(v)])
                .collect();
            let mut out = table(&["Field".to_owned(), "Value".to_owned()], &rows);
            if let Some(n) = note {
                out.push_str(n);
                out.push('\n');
            }
            out
        }
        View::List { headers, rows, .. } => {
            let rows: Vec<Vec<Vec<String>>> = rows
                .iter()
                .map(|r| r.iter().map(|v| vec![cell_text(v)]).collect())
                .collect();
            table(headers, &rows)
        }
        View::Empty => String::new(),
    }
}

fn render_value(view: &View) -> String {
    let mut out = String::new();
    match view {
        View::Record { fields, .. } => {
            for (_, v) in fields {
                out.push_str(&cell_text(v));
                out.push('\n');
            }
        }
        View::List { rows, .. } => {
            for r in rows {
                out.push_str(&r.iter().map(cell_text).collect::<Vec<_>>().join(" "));
                out.push('\n');
            }
        }
        View::Empty => {}
    }
    out
}
