//! virsh's table layout (vshTable): a leading space, columns padded to
//! their widest cell and separated by three spaces, the last one unpadded,
//! and a rule of dashes under the header.

/// The table as text; `quiet` (virsh's -q) leaves out the header and its
/// rule.
pub fn render(headers: &[&str], rows: &[Vec<String>], quiet: bool) -> String {
    let columns = headers.len();
    // Without its header (quiet), a column is as wide as its widest cell.
    let mut widths: Vec<usize> = headers
        .iter()
        .map(|header| if quiet { 0 } else { header.chars().count() })
        .collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::from(" ");
        for (index, cell) in cells.enumerate() {
            text.push_str(cell);
            if index + 1 < columns {
                let padding = widths[index] - cell.chars().count() + 3;
                text.extend(std::iter::repeat_n(' ', padding));
            }
        }
        text.push('\n');
        text
    };
    let mut out = String::new();
    if !quiet {
        out = line(&mut headers.iter().copied());
        let rule: usize = widths.iter().map(|width| width + 3).sum();
        out.extend(std::iter::repeat_n('-', rule));
        out.push('\n');
    }
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// A flag as virsh prints it.
pub fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADERS: [&str; 4] = ["Name", "State", "Autostart", "Persistent"];

    #[test]
    fn matches_virsh_net_list() {
        let rows = vec![vec![
            "default".to_owned(),
            "inactive".to_owned(),
            "no".to_owned(),
            "yes".to_owned(),
        ]];
        assert_eq!(
            render(&HEADERS, &rows, false),
            " Name      State      Autostart   Persistent\n\
             ----------------------------------------------\n \
             default   inactive   no          yes\n"
        );
        assert_eq!(
            render(&HEADERS, &rows, true),
            " default   inactive   no   yes\n"
        );
    }

    #[test]
    fn an_empty_table_keeps_its_header() {
        assert_eq!(
            render(&HEADERS, &[], false),
            " Name   State   Autostart   Persistent\n\
             ----------------------------------------\n"
        );
    }
}
