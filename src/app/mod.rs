//! The `rsstyle` command-line tool's subcommands.

pub mod bench;
pub mod capture;
pub mod convert;
pub mod evaluate;
pub mod frames;
pub mod live;
pub mod models;
pub mod quantize;
pub mod remote;
pub mod serve;
pub mod sheet;
pub mod train;

/// Parses `WIDTHxHEIGHT`.
pub fn parse_size<T: std::str::FromStr>(s: &str) -> anyhow::Result<(T, T)> {
    use anyhow::Context;
    let (w, h) = s
        .split_once('x')
        .with_context(|| format!("size '{s}' is not WIDTHxHEIGHT"))?;
    match (w.parse(), h.parse()) {
        (Ok(w), Ok(h)) => Ok((w, h)),
        _ => anyhow::bail!("size '{s}' is not WIDTHxHEIGHT"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_parse_or_say_why_not() {
        assert_eq!(super::parse_size::<u32>("640x480").unwrap(), (640, 480));
        for bad in ["640", "640x", "x480", "640by480", "-1x5"] {
            let e = super::parse_size::<u32>(bad).unwrap_err().to_string();
            assert_eq!(e, format!("size '{bad}' is not WIDTHxHEIGHT"));
        }
    }
}
