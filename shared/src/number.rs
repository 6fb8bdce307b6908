//! Decimal numbers written as text (`-1.5`, `.5`, `210`), for the parsers of lengths and font
//! axes. Each caller checks its own grammar first; this only turns digits into an `f64`.

/// `-?digits`, `-?digits.`, `-?.digits` or `-?digits.digits` as a number; anything else (an
/// exponent, `+`, `inf`, no digit at all) is `None`.
///
/// Through serde_json's number parser rather than `f64::from_str`: the Worker already carries
/// the former, and the latter brings ~20 KiB of tables. Both give the correctly rounded value
/// for up to 15 significant digits (a page length or a font axis has fewer); beyond that
/// serde_json may be one unit in the last place off.
pub(crate) fn parse_decimal(text: &str) -> Option<f64> {
    let (sign, body) = text.strip_prefix('-').map_or(("", text), |rest| ("-", rest));
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    // JSON wants one digit on each side of the point and no leading zeros.
    let whole = match whole.trim_start_matches('0') {
        "" => "0",
        w => w,
    };
    let fraction = if fraction.is_empty() { "0" } else { fraction };
    serde_json::from_str(&format!("{sign}{whole}.{fraction}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn takes_what_f64_from_str_takes_of_this_grammar() {
        for ok in ["0", "-0", "7", "007", "1.", ".5", "-.5", "-1.", "2.54", "595.5", "100.25"] {
            let want: f64 = ok.parse().unwrap();
            let got = parse_decimal(ok).unwrap();
            assert_eq!(got.to_bits(), want.to_bits(), "{ok}");
        }
        for bad in ["", "-", ".", "-.", "1e2", "+5", "inf", "NaN", "1.2.3", "--1", "1-2", " 1"] {
            assert_eq!(parse_decimal(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn same_bits_as_f64_from_str_up_to_15_digits(
            neg in any::<bool>(),
            whole in "[0-9]{0,8}",
            fraction in "[0-9]{0,7}",
            point in any::<bool>(),
        ) {
            let sign = if neg { "-" } else { "" };
            let text =
                if point { format!("{sign}{whole}.{fraction}") } else { format!("{sign}{whole}") };
            let want = text.parse::<f64>().ok();
            prop_assert_eq!(parse_decimal(&text).map(f64::to_bits), want.map(f64::to_bits), "{}", text);
        }
    }
}
