//! Renders rows as an aligned text table: a title row, a rule, one row per item; the
//! first column left-aligned, the others right-aligned. Both simulation reports use it.

use std::fmt::Write as _;

/// One column: its title and how to render an item's cell.
pub type Column<T> = (&'static str, fn(&T) -> String);

/// The table of `rows` under `columns`.
pub fn render_columns<T>(rows: &[T], columns: &[Column<T>]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|(_, cell)| cell(r)).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (title, _))| {
            cells
                .iter()
                .map(|row| row[i].len())
                .chain([title.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let mut line = |row: &[String]| {
        let text: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, &w))| {
                if i == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(
        &columns
            .iter()
            .map(|(t, _)| t.to_string())
            .collect::<Vec<_>>(),
    );
    line(&widths.iter().map(|&w| "-".repeat(w)).collect::<Vec<_>>());
    for row in &cells {
        line(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_titles_and_cells() {
        let columns: &[Column<(String, u32)>] =
            &[("name", |r| r.0.clone()), ("value", |r| r.1.to_string())];
        let table = render_columns(&[("a".to_owned(), 10), ("long".to_owned(), 2)], columns);
        assert_eq!(
            table,
            "name  value\n----  -----\na        10\nlong      2\n"
        );
    }
}
