//! Google Fonts family specs, as the css2 API takes them in `family=`:
//!
//! - `Inter` (the default style),
//! - `Inter:wght@400;600` (one axis, several values),
//! - `Roboto:ital,wght@0,400;1,700` (several axes; `ital` 0 or 1 selects italics),
//! - `Inter:wght@100..900` (a range of a variable axis),
//! - `Roboto:400,700italic` (the older css API's shorthand, converted to `ital,wght`).
//!
//! A parsed spec is normalized the way the css2 API wants it: axes in its order (lower-case
//! registered axes alphabetically, then upper-case custom ones), tuples sorted, duplicates gone.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const MAX_SPEC_CHARS: usize = 200;
const MAX_AXES: usize = 8;
const MAX_TUPLES: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct FontSpec {
    family: String,
    axes: Vec<String>,
    tuples: Vec<Vec<AxisValue>>,
}

/// One value of an axis: a number, or a range `lo..hi` of a variable font.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub enum AxisValue {
    Single(f64),
    Range(f64, f64),
}

impl AxisValue {
    fn low(self) -> f64 {
        match self {
            Self::Single(v) | Self::Range(v, _) => v,
        }
    }
}

impl std::fmt::Display for AxisValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Single(v) => write!(f, "{v}"),
            Self::Range(a, b) => write!(f, "{a}..{b}"),
        }
    }
}

/// Why a spec was refused; the message says how to write it instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FontSpecError(String);

fn err(msg: impl Into<String>) -> FontSpecError {
    FontSpecError(msg.into())
}

impl FontSpec {
    pub fn parse(spec: &str) -> Result<Self, FontSpecError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(err(
                "is empty: write a Google Fonts family such as \"Inter:wght@400;600\"",
            ));
        }
        if spec.chars().count() > MAX_SPEC_CHARS {
            return Err(err(format!("is longer than {MAX_SPEC_CHARS} characters")));
        }
        let (family, styles) = match spec.split_once(':') {
            Some((f, s)) => (f, Some(s)),
            None => (spec, None),
        };
        let family = parse_family(family)?;
        let (axes, tuples) = match styles {
            None => (Vec::new(), Vec::new()),
            Some(s) if s.contains('@') => parse_axes_and_tuples(s)?,
            Some(s) => parse_legacy_styles(s)?,
        };
        Ok(normalize(family, &axes, tuples))
    }

    pub fn family(&self) -> &str {
        &self.family
    }

    pub fn axes(&self) -> &[String] {
        &self.axes
    }

    pub fn tuples(&self) -> &[Vec<AxisValue>] {
        &self.tuples
    }

    /// Whether any tuple asks for italics.
    pub fn has_italic(&self) -> bool {
        match self.axes.iter().position(|a| a == "ital") {
            Some(i) => self.tuples.iter().any(|t| t[i] == AxisValue::Single(1.0)),
            None => false,
        }
    }

    /// The value of css2's `family=` parameter (spaces as `+`), e.g. `Crimson+Pro:wght@400`.
    pub fn css2_family_param(&self) -> String {
        self.to_string().replace(' ', "+")
    }
}

impl std::fmt::Display for FontSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.family)?;
        if self.axes.is_empty() {
            return Ok(());
        }
        write!(f, ":{}@", self.axes.join(","))?;
        for (i, tuple) in self.tuples.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            for (j, v) in tuple.iter().enumerate() {
                if j > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{v}")?;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for FontSpec {
    type Err = FontSpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for FontSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FontSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn parse_family(raw: &str) -> Result<String, FontSpecError> {
    let words: Vec<&str> = raw.split(['+', ' ']).filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        return Err(err("has no family name before ':'"));
    }
    for w in &words {
        if !w.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(err(format!(
                "has an unexpected character in the family name {raw:?}: Google Fonts families \
                 are letters, digits, spaces and hyphens"
            )));
        }
    }
    Ok(words.join(" "))
}

fn parse_axes_and_tuples(s: &str) -> Result<(Vec<String>, Vec<Vec<AxisValue>>), FontSpecError> {
    let (axes_part, tuples_part) = s.split_once('@').unwrap_or((s, ""));
    let axes: Vec<String> = axes_part.split(',').map(|a| a.trim().to_owned()).collect();
    if axes.len() > MAX_AXES {
        return Err(err(format!("has more than {MAX_AXES} axes")));
    }
    for (i, axis) in axes.iter().enumerate() {
        let lower = axis.len() == 4 && axis.chars().all(|c| c.is_ascii_lowercase());
        let upper = axis.len() == 4 && axis.chars().all(|c| c.is_ascii_uppercase());
        if !(lower || upper) {
            return Err(err(format!(
                "has an invalid axis {axis:?}: axes are four letters such as wght, ital, wdth, \
                 opsz or GRAD"
            )));
        }
        if axes[..i].contains(axis) {
            return Err(err(format!("names the axis {axis} twice")));
        }
    }
    if tuples_part.trim().is_empty() {
        return Err(err("has no values after '@': write e.g. \"Inter:wght@400;700\""));
    }
    let mut tuples = Vec::new();
    for tuple in tuples_part.split(';') {
        let values: Vec<&str> = tuple.split(',').collect();
        if values.len() != axes.len() {
            return Err(err(format!(
                "has the tuple {tuple:?} with {} value(s) for {} axis/axes ({}): give one value \
                 per axis, tuples separated by ';'",
                values.len(),
                axes.len(),
                axes.join(",")
            )));
        }
        let parsed = values
            .iter()
            .zip(&axes)
            .map(|(v, axis)| parse_axis_value(axis, v.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        tuples.push(parsed);
        if tuples.len() > MAX_TUPLES {
            return Err(err(format!("has more than {MAX_TUPLES} tuples")));
        }
    }
    Ok((axes, tuples))
}

fn parse_number(s: &str) -> Option<f64> {
    let ok = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-')
        && s.len() <= 12;
    ok.then(|| crate::number::parse_decimal(s)).flatten().filter(|v| v.is_finite())
}

fn parse_axis_value(axis: &str, s: &str) -> Result<AxisValue, FontSpecError> {
    let bad = || err(format!("has an invalid value {s:?} for the axis {axis}"));
    let value = match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (parse_number(a).ok_or_else(bad)?, parse_number(b).ok_or_else(bad)?);
            if a >= b {
                return Err(err(format!("has the range {s:?} for {axis}: write it low..high")));
            }
            AxisValue::Range(a, b)
        }
        None => AxisValue::Single(parse_number(s).ok_or_else(bad)?),
    };
    let (lo, hi) = match value {
        AxisValue::Single(v) => (v, v),
        AxisValue::Range(a, b) => (a, b),
    };
    let in_range = |min: f64, max: f64| lo >= min && hi <= max;
    let ok = match axis {
        "ital" => matches!(value, AxisValue::Single(v) if v == 0.0 || v == 1.0),
        "wght" => in_range(1.0, 1000.0),
        "wdth" => in_range(1.0, 1000.0),
        "slnt" => in_range(-90.0, 90.0),
        "opsz" => in_range(0.0, 1000.0),
        _ => in_range(-10_000.0, 10_000.0),
    };
    if ok {
        Ok(value)
    } else {
        Err(err(match axis {
            "ital" => format!("has ital={s}: ital is 0 (upright) or 1 (italic)"),
            "wght" => format!("has wght={s}: weights run from 1 to 1000"),
            _ => format!("has the value {s} out of range for the axis {axis}"),
        }))
    }
}

/// The css API's `400,700italic` / `regular,italic` shorthand as `ital,wght` tuples.
fn parse_legacy_styles(s: &str) -> Result<(Vec<String>, Vec<Vec<AxisValue>>), FontSpecError> {
    let mut tuples = Vec::new();
    for item in s.split(',').map(str::trim) {
        let (weight, italic) = match item {
            "regular" => ("400", false),
            "italic" | "i" => ("400", true),
            _ => match item.strip_suffix("italic").or_else(|| item.strip_suffix('i')) {
                Some(w) => (w, true),
                None => (item, false),
            },
        };
        let weight = match parse_number(weight) {
            Some(w) if (1.0..=1000.0).contains(&w) && !weight.contains(['.', '-']) => w,
            _ => {
                return Err(err(format!(
                    "has an unknown style {item:?}: write \"Family:wght@400;700\" (or \
                     \"Family:ital,wght@0,400;1,700\" for italics)"
                )))
            }
        };
        tuples
            .push(vec![AxisValue::Single(f64::from(u8::from(italic))), AxisValue::Single(weight)]);
    }
    Ok((vec!["ital".to_owned(), "wght".to_owned()], tuples))
}

/// Axes in css2's order (lower-case first, each group alphabetical); tuples reordered to
/// match, sorted by their values, duplicates dropped.
fn normalize(family: String, axes: &[String], tuples: Vec<Vec<AxisValue>>) -> FontSpec {
    let mut order: Vec<usize> = (0..axes.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |s: &str| (s.starts_with(|c: char| c.is_ascii_uppercase()), s.to_owned());
        key(&axes[a]).cmp(&key(&axes[b]))
    });
    let axes = order.iter().map(|&i| axes[i].clone()).collect();
    let mut tuples: Vec<Vec<AxisValue>> =
        tuples.into_iter().map(|t| order.iter().map(|&i| t[i]).collect()).collect();
    tuples.sort_by(|a, b| {
        a.iter()
            .zip(b)
            .map(|(x, y)| {
                x.low()
                    .total_cmp(&y.low())
                    .then(x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal))
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    tuples.dedup();
    FontSpec { family, axes, tuples }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        FontSpec::parse(s).unwrap().to_string()
    }

    #[test]
    fn family_alone() {
        let f = FontSpec::parse("Inter").unwrap();
        assert_eq!(f.family(), "Inter");
        assert!(f.axes().is_empty());
        assert_eq!(f.to_string(), "Inter");
    }

    #[test]
    fn one_axis_several_values() {
        let f = FontSpec::parse("Inter:wght@400;600").unwrap();
        assert_eq!(f.axes(), ["wght"]);
        assert_eq!(f.tuples(), [vec![AxisValue::Single(400.0)], vec![AxisValue::Single(600.0)]]);
        assert_eq!(f.to_string(), "Inter:wght@400;600");
    }

    #[test]
    fn several_axes_with_italics() {
        let f = FontSpec::parse("Roboto:ital,wght@1,700;0,400").unwrap();
        assert_eq!(f.to_string(), "Roboto:ital,wght@0,400;1,700");
        assert!(f.has_italic());
        assert!(!FontSpec::parse("Roboto:ital,wght@0,400").unwrap().has_italic());
    }

    #[test]
    fn axes_are_put_in_css2_order_with_their_values() {
        assert_eq!(
            norm("Roboto Flex:wght,GRAD,opsz@400,0,12"),
            "Roboto Flex:opsz,wght,GRAD@12,400,0"
        );
    }

    #[test]
    fn ranges_of_variable_axes() {
        assert_eq!(norm("Inter:wght@100..900"), "Inter:wght@100..900");
        assert!(FontSpec::parse("Inter:wght@900..100").is_err());
    }

    #[test]
    fn tuples_are_sorted_and_deduplicated() {
        assert_eq!(norm("Inter:wght@700;400;700"), "Inter:wght@400;700");
    }

    #[test]
    fn plus_and_spaces_in_family_names() {
        let f = FontSpec::parse("Crimson+Pro:wght@400").unwrap();
        assert_eq!(f.family(), "Crimson Pro");
        assert_eq!(f.css2_family_param(), "Crimson+Pro:wght@400");
        assert_eq!(norm("  Noto   Sans JP "), "Noto Sans JP");
    }

    #[test]
    fn legacy_weight_lists_become_ital_wght() {
        assert_eq!(norm("Roboto:400,700italic"), "Roboto:ital,wght@0,400;1,700");
        assert_eq!(norm("Roboto:regular,italic"), "Roboto:ital,wght@0,400;1,400");
        assert!(FontSpec::parse("Roboto:bold").is_err());
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let cases = [
            ("", "empty"),
            (":wght@400", "no family"),
            ("Inter<script>", "unexpected character"),
            ("Inter:weight@400", "invalid axis"),
            ("Inter:wght,wght@400,400", "twice"),
            ("Inter:wght@", "no values"),
            ("Inter:ital,wght@400", "1 value(s) for 2"),
            ("Inter:wght@abc", "invalid value"),
            ("Inter:wght@1200", "1 to 1000"),
            ("Inter:ital@2", "0 (upright) or 1"),
            ("Inter:slnt@-120", "out of range"),
        ];
        for (spec, needle) in cases {
            let e = FontSpec::parse(spec).unwrap_err().to_string();
            assert!(e.contains(needle), "{spec:?}: {e}");
        }
        assert!(FontSpec::parse(&"A".repeat(201)).unwrap_err().to_string().contains("longer"));
    }

    #[test]
    fn serde_uses_the_spec_string() {
        let f: FontSpec = serde_json::from_str("\"Inter:wght@600;400\"").unwrap();
        assert_eq!(serde_json::to_string(&f).unwrap(), "\"Inter:wght@400;600\"");
    }
}
