#![allow(dead_code)] // shared by the benches, each using part of it
//! Aligned tables for benchmark output: a label column, then right-aligned figures.

pub fn header(columns: &[&str]) {
    println!(
        "{:<44}{}",
        columns[0],
        columns[1..].iter().map(|c| format!("{c:>13}")).collect::<String>()
    );
}

pub fn row(label: &str, cells: &[String]) {
    println!(
        "{label:<44}{}",
        cells.iter().map(|c| format!("{c:>13}")).collect::<String>()
    );
}

pub fn f0(v: f64) -> String {
    format!("{v:.0}")
}

pub fn f1(v: f64) -> String {
    format!("{v:.1}")
}

pub fn f2(v: f64) -> String {
    format!("{v:.2}")
}

pub fn f3(v: f64) -> String {
    format!("{v:.3}")
}
