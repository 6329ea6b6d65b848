//! Typed parsing of one component's settings that reports every bad value by its key path
//! (`retry_on_failure.max_interval`) and the line and column of that value, instead of the
//! first error at the component's line.
//!
//! serde stops at the first error, so after each one the offending key is removed from a copy
//! of the component's YAML tree and parsing is tried again (up to [`MAX_ERRORS`] times): a
//! component with three bad values gets three errors. serde_path_to_error names the key path;
//! the YAML library gives the position: the path is walked once more over the config text with
//! a `DeserializeSeed` that fails on the value it reaches, and the YAML deserializer marks that
//! failure with the value's line and column.

use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess};
use std::fmt;

/// Most errors reported for one component (a file of garbage stays readable).
pub const MAX_ERRORS: usize = 20;

/// One step of a key path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A mapping key.
    Key(String),
    /// A 0-based sequence index.
    Index(usize),
}

/// One bad value inside a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// The path below the component (empty for the component's own value).
    pub path: Vec<Step>,
    /// What serde or the setting's parser said.
    pub message: String,
    /// 1-based line and column of the value in the config text, when the walk found it.
    pub position: Option<(usize, usize)>,
}

/// `a.b[2].c` (keys joined by `.`, indexes in brackets).
pub fn display(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Parses the settings `value` found at `base` (e.g. `["exporters", "otlp/x"]`) of the config
/// `text`. A YAML null stands for "all defaults" (`debug:` with nothing after it).
///
/// # Errors
/// Every bad value found (at most [`MAX_ERRORS`]), each with its path below `base` and, when
/// the value is found in `text`, its 1-based line and column.
pub fn parse<T: DeserializeOwned>(
    text: &str,
    base: &[&str],
    value: &serde_yaml::Value,
    originals: &super::env::Originals,
) -> Result<T, Vec<ValueError>> {
    let mut cur = if value.is_null() {
        serde_yaml::Value::Mapping(Default::default())
    } else {
        value.clone()
    };
    let mut errors = Vec::new();
    let mut removed: Vec<Vec<Step>> = Vec::new();
    // paths given an environment value's other reading (each at most once)
    let mut reread: Vec<Vec<Step>> = Vec::new();
    loop {
        let e = match serde_path_to_error::deserialize::<_, T>(cur.clone()) {
            Ok(t) if errors.is_empty() => return Ok(t),
            Ok(_) => return Err(errors),
            Err(e) => e,
        };
        let mut path = steps(e.path());
        let message = plain_expectation(e.into_inner().to_string());
        // A key this loop removed and the type requires: not a problem of the file.
        if let Some(field) = quoted_field(&message, "missing field `") {
            let mut p = path.clone();
            p.push(Step::Key(field.to_string()));
            if removed.contains(&p) {
                return Err(errors);
            }
        }
        // serde names an unknown key in the message, at its parent's path: point at the key.
        if let Some(field) = quoted_field(&message, "unknown field `")
            && path.last() != Some(&Step::Key(field.to_string()))
        {
            path.push(Step::Key(field.to_string()));
        }
        let mut full: Vec<Step> = base.iter().map(|k| Step::Key(k.to_string())).collect();
        full.extend(path.iter().cloned());
        let mut message = message;
        if let Some(original) = reference_at(text, &full).and_then(|i| originals.get(&i))
            && let Some(at) = value_at(&mut cur, &path)
        {
            if !reread.contains(&path) {
                match reread_env(at, original, &message) {
                    Reread::Value(v) => {
                        *at = v;
                        reread.push(path);
                        continue;
                    }
                    Reread::Default => {
                        if remove(&mut cur, &path) {
                            reread.push(path);
                            continue;
                        }
                    }
                    Reread::NotYaml(why) => message = why,
                    Reread::No => {}
                }
            }
            // a variable's value is never quoted in a message (it may be a secret)
            message = message.replace(
                &format!("{original:?}"),
                "(the environment variable's value)",
            );
        }
        errors.push(ValueError {
            position: position(text, &full),
            path: path.clone(),
            message,
        });
        if errors.len() >= MAX_ERRORS || !remove(&mut cur, &path) {
            return Err(errors);
        }
        removed.push(path);
    }
}

/// The YAML reader's message in a config file's words: without the position (reported apart)
/// and, for an integer no 64-bit type holds (read as a 128-bit one), its range instead of
/// "as u128, expected any YAML value".
pub(crate) fn plain_yaml_error(e: &serde_yaml::Error) -> String {
    let mut m = e.to_string();
    if let Some(l) = e.location()
        && let Some(head) = m.strip_suffix(&format!(" at line {} column {}", l.line(), l.column()))
    {
        m = head.to_string();
    }
    if let Some((head, rest)) = m.split_once("invalid type: integer `")
        && let Some((number, tail)) = rest.split_once("` as ")
        && (tail.starts_with("u128") || tail.starts_with("i128"))
    {
        return format!(
            "{head}integer {number} is out of range (from -9223372036854775808 to 18446744073709551615)"
        );
    }
    m
}

/// serde names a primitive it expected by its Rust type (`expected u64`); a config file's
/// reader knows YAML's words. Only the trailing `expected <type>` of a message is rewritten.
fn plain_expectation(message: String) -> String {
    const WORDS: [(&str, &str); 12] = [
        ("u8", "a non-negative integer (at most 255)"),
        ("u16", "a non-negative integer (at most 65535)"),
        ("u32", "a non-negative integer (at most 4294967295)"),
        ("u64", "a non-negative integer"),
        ("usize", "a non-negative integer"),
        ("i8", "an integer"),
        ("i16", "an integer"),
        ("i32", "an integer"),
        ("i64", "an integer"),
        ("isize", "an integer"),
        ("f32", "a number"),
        ("f64", "a number"),
    ];
    for (rust, plain) in WORDS {
        if let Some(head) = message.strip_suffix(&format!("expected {rust}")) {
            return format!("{head}expected {plain}");
        }
    }
    message
}

fn quoted_field<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.split('`').next()
}

fn steps(path: &serde_path_to_error::Path) -> Vec<Step> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(Step::Key(key.clone())),
            Segment::Seq { index } => Some(Step::Index(*index)),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect()
}

/// Whether serde's `message` says a number or boolean was given where text was expected (a
/// `String`, or a scalar read as text: `common::Headers`).
fn expects_text(message: &str) -> bool {
    message == super::common::NOT_TEXT
        || (message.ends_with("expected a string")
            && ["integer `", "floating point `", "boolean `"]
                .iter()
                .any(|t| message.starts_with(&format!("invalid type: {t}"))))
}

/// Whether serde's `message`, about a string, says a sequence or mapping was expected (a list,
/// a map, a settings struct, or `common`'s text lists and headers, whose messages say so
/// whatever they were given).
fn expects_collection(message: &str) -> bool {
    message == super::common::NOT_TEXT_LIST
        || message == super::common::NOT_HEADERS
        || (message.starts_with("invalid type: string ")
            && (message.ends_with("expected a sequence")
                || message.ends_with("expected a map")
                || message.contains("expected struct ")))
}

/// The index of the environment reference that the value at `path` of the config `text`
/// (references masked) is written as, when it is one: its first character is a placeholder.
fn reference_at(text: &str, path: &[Step]) -> Option<usize> {
    let (line, column) = position(text, path)?;
    let line = text.lines().nth(line.saturating_sub(1))?;
    let (at, _) = line.char_indices().nth(column.saturating_sub(1))?;
    let mut value = &line[at..];
    // an anchor or a tag before the value (`&h ${env:X}`) is not part of it
    while value.starts_with(['&', '!']) {
        let end = value.find([' ', '\t'])?;
        value = value[end..].trim_start_matches([' ', '\t']);
    }
    super::env::placeholder_at(value)
}

/// What a setting given an environment reference reads instead of the value it was given.
enum Reread {
    /// this value
    Value(serde_yaml::Value),
    /// nothing: the setting is left out, its default applies
    Default,
    /// the setting takes a list or mapping and the variable is not YAML: why
    NotYaml(String),
    /// the value as it is
    No,
}

/// [`Reread`] for the value `at` of a whole reference whose variable held `original`, which
/// serde refused with `message`:
/// - a number or boolean given to a text setting: its text, as the Collector keeps an expanded
///   value's original string;
/// - text given to a setting that takes a list or mapping: the text as YAML reads it, as the
///   Collector's confmap does (`exporters: ${env:EXPORTERS}`); empty, `~` or `null` leaves
///   the setting out, as the Collector reads it as null (`headers: ${env:HEADERS:-}`).
fn reread_env(at: &serde_yaml::Value, original: &str, message: &str) -> Reread {
    if !at.is_string() && expects_text(message) {
        return Reread::Value(serde_yaml::Value::String(original.to_string()));
    }
    if !(at.is_string() && expects_collection(message)) {
        return Reread::No;
    }
    if original.trim().is_empty() {
        return Reread::Default;
    }
    match serde_yaml::from_str::<serde_yaml::Value>(original) {
        Ok(v @ (serde_yaml::Value::Sequence(_) | serde_yaml::Value::Mapping(_))) => {
            Reread::Value(v)
        }
        Ok(serde_yaml::Value::Null) => Reread::Default,
        Ok(_) => Reread::NotYaml(
            "expected a list or mapping; the environment variable holds a single value".into(),
        ),
        Err(e) => Reread::NotYaml(format!(
            "expected a list or mapping; the environment variable's value is not YAML: {}",
            plain_yaml_error(&e)
        )),
    }
}

/// The value at `path` in `v`, if there is one.
fn value_at<'v>(v: &'v mut serde_yaml::Value, path: &[Step]) -> Option<&'v mut serde_yaml::Value> {
    let mut at = v;
    for step in path {
        at = match (step, at) {
            (Step::Key(k), serde_yaml::Value::Mapping(m)) => m.get_mut(k.as_str())?,
            (Step::Index(i), serde_yaml::Value::Sequence(s)) => s.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(at)
}

/// Removes the mapping key at `path` from `v`; false when `path` is empty, goes through a
/// sequence (removing an element would renumber the later ones) or is not there.
fn remove(v: &mut serde_yaml::Value, path: &[Step]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut at = v;
    for step in parents {
        at = match (step, at) {
            (Step::Key(k), serde_yaml::Value::Mapping(m)) => match m.get_mut(k.as_str()) {
                Some(next) => next,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, at) {
        (Step::Key(k), serde_yaml::Value::Mapping(m)) => m.remove(k.as_str()).is_some(),
        _ => false,
    }
}

/// The message the walk fails with on reaching its value.
const HERE: &str = "watchtower: value reached";

/// 1-based (line, column) of the value at `path` in `text`, from the YAML deserializer's
/// own position marks.
pub fn position(text: &str, path: &[Step]) -> Option<(usize, usize)> {
    let de = serde_yaml::Deserializer::from_str(text);
    match Walk(path).deserialize(de) {
        Err(e) if e.to_string().contains(HERE) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

/// Walks down `path`, skipping everything else; fails on the value it reaches.
struct Walk<'p>(&'p [Step]);

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> de::Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Step::Key(want), rest)) = self.0.split_first() else {
            return Err(de::Error::custom(HERE));
        };
        while let Some(key) = map.next_key::<serde_yaml::Value>()? {
            let matches = match &key {
                serde_yaml::Value::String(s) => s == want,
                serde_yaml::Value::Number(n) => n.to_string() == *want,
                serde_yaml::Value::Bool(b) => b.to_string() == *want,
                _ => false,
            };
            if matches {
                return map.next_value_seed(Walk(rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Step::Index(want), rest)) = self.0.split_first() else {
            return Err(de::Error::custom(HERE));
        };
        for _ in 0..*want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Walk(rest)).map(|_| ())
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
}

impl Walk<'_> {
    /// A scalar is the target when the path ends here; a path going on below it is not found.
    fn scalar<E: de::Error>(&self) -> Result<(), E> {
        if self.0.is_empty() {
            Err(E::custom(HERE))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Retry {
        #[serde(default)]
        max_interval: Option<crate::config::common::Dur>,
        #[serde(default)]
        initial_interval: Option<crate::config::common::Dur>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Exp {
        endpoint: String,
        #[serde(default)]
        retry_on_failure: Option<Retry>,
        #[serde(default)]
        headers: Vec<String>,
    }

    fn run(text: &str) -> Result<Exp, Vec<ValueError>> {
        let root: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        parse::<Exp>(
            text,
            &["exporters", "otlp/x"],
            &root["exporters"]["otlp/x"],
            &Default::default(),
        )
    }

    #[test]
    fn every_bad_value_has_its_path_line_and_column() {
        let text = "exporters:\n  otlp/x:\n    endpoint: http://x\n    retry_on_failure:\n      max_interval: 5x\n      initial_interval: soon\n    endpont: typo\n";
        let errs = run(text).unwrap_err();
        let got: Vec<(String, Option<(usize, usize)>)> = errs
            .iter()
            .map(|e| (display(&e.path), e.position))
            .collect();
        assert_eq!(
            got,
            [
                ("retry_on_failure.max_interval".to_string(), Some((5, 21))),
                (
                    "retry_on_failure.initial_interval".to_string(),
                    Some((6, 25))
                ),
                ("endpont".to_string(), Some((7, 14))),
            ],
            "{errs:?}"
        );
        assert!(errs[0].message.contains("\"5x\""), "{errs:?}");
        assert!(
            errs[2].message.starts_with("unknown field `endpont`"),
            "{errs:?}"
        );
    }

    #[test]
    fn flow_style_and_sequences_are_found() {
        let text = "exporters: { otlp/x: { endpoint: http://x, headers: [a, {b: 1}] } }\n";
        let errs = run(text).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(display(&errs[0].path), "headers[1]");
        assert_eq!(errs[0].position, Some((1, 57)), "{errs:?}");
    }

    #[test]
    fn a_removed_required_key_is_not_reported_again() {
        let text = "exporters:\n  otlp/x:\n    endpoint: [1]\n";
        let errs = run(text).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(display(&errs[0].path), "endpoint");
        assert_eq!(errs[0].position, Some((3, 15)));
    }

    #[test]
    fn good_settings_and_null_parse() {
        let ok = run("exporters:\n  otlp/x:\n    endpoint: http://x\n").unwrap();
        assert_eq!(ok.endpoint, "http://x");
        let text = "exporters:\n  otlp/x:\n";
        let errs = run(text).unwrap_err();
        assert!(
            errs[0].message.contains("missing field `endpoint`"),
            "{errs:?}"
        );
    }

    #[test]
    fn expected_numbers_are_named_in_yaml_words_not_rust_types() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Sizes {
            queue_size: usize,
            port: u16,
            offset: i64,
            ratio: f64,
        }
        let text = "s:\n  queue_size: -1\n  port: 70000\n  offset: x\n  ratio: [1]\n";
        let root: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        let errs = parse::<Sizes>(text, &["s"], &root["s"], &Default::default()).unwrap_err();
        let mut got: Vec<&str> = errs.iter().map(|e| e.message.as_str()).collect();
        got.sort_unstable();
        assert_eq!(
            got,
            [
                "invalid type: sequence, expected a number",
                "invalid type: string \"x\", expected an integer",
                "invalid value: integer `-1`, expected a non-negative integer",
                "invalid value: integer `70000`, expected a non-negative integer (at most 65535)",
            ]
        );
    }
}
