//! A plugin's output read per the Nagios plugin guidelines: the first line up to `|` is the
//! text; performance data follow that `|`, and the first `|` of the long output starts more
//! of them, to the end. Each item is `'label'=value[UOM];warn;crit;min;max`: the value becomes
//! a metric named by its label (the unit and the limits are not kept).

/// Metrics kept from one output, at most; and a label's length.
pub const MAX_METRICS: usize = 64;
const MAX_LABEL: usize = 128;

/// What a plugin printed: its one-line text and its metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub text: String,
    pub metrics: Vec<(String, f64)>,
}

pub fn parse(output: &str) -> Output {
    let (first, long) = output.split_once('\n').unwrap_or((output, ""));
    let (text, mut perf) = match first.split_once('|') {
        Some((text, perf)) => (text, perf.to_string()),
        None => (first, String::new()),
    };
    if let Some((_, more)) = long.split_once('|') {
        perf.push(' ');
        perf.push_str(more);
    }
    let metrics = items(&perf)
        .filter_map(|item| metric(&item))
        .take(MAX_METRICS)
        .collect();
    Output {
        text: text.trim().to_string(),
        metrics,
    }
}

/// Splits performance data at white space outside single quotes.
fn items(perf: &str) -> impl Iterator<Item = String> + '_ {
    let mut chars = perf.chars().peekable();
    std::iter::from_fn(move || {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        chars.peek()?;
        let mut item = String::new();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            match c {
                '\'' if quoted && chars.peek() == Some(&'\'') => {
                    // '' inside quotes is one quote.
                    chars.next();
                    item.push_str("''");
                }
                '\'' => {
                    quoted = !quoted;
                    item.push(c);
                }
                c if c.is_whitespace() && !quoted => break,
                c => item.push(c),
            }
        }
        Some(item)
    })
}

/// `label=value[UOM];…` → (label, value); `None` for anything else (`U`, garbage).
fn metric(item: &str) -> Option<(String, f64)> {
    let (label, rest) = match item.strip_prefix('\'') {
        Some(quoted) => {
            let end = closing_quote(quoted)?;
            let rest = quoted[end + 1..].strip_prefix('=')?;
            (quoted[..end].replace("''", "'"), rest)
        }
        None => {
            let (label, rest) = item.split_once('=')?;
            (label.to_string(), rest)
        }
    };
    if label.is_empty() || label.chars().count() > MAX_LABEL || label.chars().any(char::is_control) {
        return None;
    }
    let value = rest.split(';').next()?;
    let number = value.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == '%');
    let value: f64 = number.parse().ok()?;
    value.is_finite().then_some((label, value))
}

/// The index of the quote that closes a quoted label (`''` is an escaped quote).
fn closing_quote(quoted: &str) -> Option<usize> {
    let bytes = quoted.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            if bytes.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(output: &str) -> Vec<(String, f64)> {
        parse(output).metrics
    }

    #[test]
    fn the_text_ends_at_the_bar_and_each_item_is_a_metric() {
        let out = parse("DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n");
        assert_eq!(out.text, "DISK OK - free space: / 3326 MB (56%);");
        assert_eq!(out.metrics, vec![("/".to_string(), 2643.0)]);
        assert_eq!(
            metrics("OK | time=0.002s;1.000;2.000;0.000 size=120B;;;0 'load avg'=0.5 pct=99.5%"),
            vec![
                ("time".to_string(), 0.002),
                ("size".to_string(), 120.0),
                ("load avg".to_string(), 0.5),
                ("pct".to_string(), 99.5)
            ]
        );
    }

    #[test]
    fn long_output_carries_more_performance_data_after_its_first_bar() {
        let out = parse("OK - two disks | /=10MB\n/ 10 MB\n/home 20 MB | /home=20MB\nswap=1MB;;;0;100\n");
        assert_eq!(out.text, "OK - two disks");
        assert_eq!(
            out.metrics,
            vec![
                ("/".to_string(), 10.0),
                ("/home".to_string(), 20.0),
                ("swap".to_string(), 1.0)
            ]
        );
    }

    #[test]
    fn quoted_labels_unknown_values_and_garbage() {
        assert_eq!(
            metrics("x | 'it''s'=1 'a b=c'=2"),
            vec![("it's".to_string(), 1.0), ("a b=c".to_string(), 2.0)]
        );
        assert!(metrics("x | a=U;1;2 b= c=x d 'open=3 =4 e=NaN f=inf").is_empty());
        assert_eq!(parse("no bar at all").text, "no bar at all");
        let many: String = (0..200).map(|i| format!("m{i}=1 ")).collect();
        assert_eq!(metrics(&format!("x | {many}")).len(), MAX_METRICS);
    }
}
