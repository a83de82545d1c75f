//! Model prices and what a request costs, in integer micro-USD.

use crate::wire::Usage;

/// USD per million tokens, held as micro-USD per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Price {
    pub input_micros_per_mtok: i64,
    pub output_micros_per_mtok: i64,
}

impl Price {
    /// A price from decimal USD amounts per million tokens (`"0.10"`), as
    /// `[prices."<model>"]` gives them.
    pub fn from_usd_per_mtok(input_per_mtok: &str, output_per_mtok: &str) -> Result<Self, String> {
        Ok(Self {
            input_micros_per_mtok: parse_usd_micros(input_per_mtok)
                .ok_or_else(|| format!("input_per_mtok {input_per_mtok:?} is not a decimal USD amount"))?,
            output_micros_per_mtok: parse_usd_micros(output_per_mtok)
                .ok_or_else(|| format!("output_per_mtok {output_per_mtok:?} is not a decimal USD amount"))?,
        })
    }

    /// What `usage` costs, rounded up to the next micro-USD.
    pub fn cost_micros(&self, usage: &Usage) -> i64 {
        let micro_tokens = i128::from(self.input_micros_per_mtok) * i128::from(usage.prompt_tokens)
            + i128::from(self.output_micros_per_mtok) * i128::from(usage.completion_tokens);
        i64::try_from((micro_tokens + 999_999) / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// `"0.10"` → `100_000`. Up to six decimals; no sign, no exponent.
pub fn parse_usd_micros(text: &str) -> Option<i64> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && fraction.is_empty()
        || fraction.len() > 6
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let fraction: i64 = format!("{fraction:0<6}").parse().ok()?;
    whole.checked_mul(1_000_000)?.checked_add(fraction)
}

/// `100_000` → `"0.10"`: at least two decimals, at most six.
pub fn format_usd_micros(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let micros = micros.unsigned_abs();
    let mut fraction = format!("{:06}", micros % 1_000_000);
    while fraction.len() > 2 && fraction.ends_with('0') {
        fraction.pop();
    }
    format!("{sign}{}.{fraction}", micros / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_usd() {
        assert_eq!(parse_usd_micros("0.10"), Some(100_000));
        assert_eq!(parse_usd_micros("15"), Some(15_000_000));
        assert_eq!(parse_usd_micros(".5"), Some(500_000));
        assert_eq!(parse_usd_micros("0.000001"), Some(1));
        for bad in ["", ".", "-1", "1e3", "0.0000001", "abc", "1.2.3"] {
            assert_eq!(parse_usd_micros(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_decimal_usd() {
        assert_eq!(format_usd_micros(100_000), "0.10");
        assert_eq!(format_usd_micros(1), "0.000001");
        assert_eq!(format_usd_micros(12_345_000), "12.345");
        assert_eq!(format_usd_micros(0), "0.00");
    }

    #[test]
    fn cost_rounds_up_to_a_micro_usd() {
        let price = Price { input_micros_per_mtok: 100_000, output_micros_per_mtok: 400_000 };
        assert_eq!(price.cost_micros(&Usage::new(1_000, 0)), 100);
        assert_eq!(price.cost_micros(&Usage::new(1_000, 1_000)), 500);
        assert_eq!(price.cost_micros(&Usage::new(1, 0)), 1);
        assert_eq!(Price::default().cost_micros(&Usage::new(10, 10)), 0);
    }
}
