//! Input bounds of the runs API: what a run id may look like, and how large labels and match
//! filters may be. Ids end up in file names (`run-<hex of id>.json`, 2 bytes per id byte, and
//! a `.tmp` sibling while saving), in JSON, in Loki labels and in terminal output, so they are
//! short and free of characters that hide or reorder text. Everything here is a pure function
//! over the request, so the limits are unit-tested without a server.

use crate::runs::RunsError;
use std::collections::BTreeMap;

/// Longest run id, in bytes (UTF-8). `run-` + 2 x 100 hex + `.json.tmp` = 213 bytes, well
/// under the 255-byte file-name limit of ext4/xfs/btrfs.
pub const MAX_ID_BYTES: usize = 100;
/// Most labels per run.
pub const MAX_LABELS: usize = 32;
/// Most `match` entries per run.
pub const MAX_MATCH_KEYS: usize = 16;
/// Longest label or match key, in bytes.
pub const MAX_KEY_BYTES: usize = 128;
/// Longest label or match value, in bytes.
pub const MAX_VALUE_BYTES: usize = 256;
/// Largest `POST /runs` body accepted, in bytes.
pub const MAX_START_BODY_BYTES: usize = 64 * 1024;

/// Characters that change how text is displayed without being visible: bidirectional
/// overrides, embeddings and isolates, zero-width characters, the BOM, soft hyphen and the
/// Mongolian vowel separator (Unicode general category Cf, the ones that matter in practice).
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}')
}

/// A run id: 1-[`MAX_ID_BYTES`] bytes, no control characters, no whitespace, no `/` or `\`,
/// nothing [`is_invisible`], not `.` or `..`.
pub fn valid_id(id: &str) -> Result<(), RunsError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(RunsError::Invalid(format!(
            "id must be 1-{MAX_ID_BYTES} bytes, got {}",
            id.len()
        )));
    }
    if id == "." || id == ".." {
        // a URL path segment of its own: `/runs/..` is `/` to every HTTP client
        return Err(RunsError::Invalid(format!(
            "id {id:?} is not allowed (a URL path cannot address it)"
        )));
    }
    if let Some(c) = id
        .chars()
        .find(|&c| c.is_control() || c.is_whitespace() || c == '/' || c == '\\' || is_invisible(c))
    {
        return Err(RunsError::Invalid(format!(
            "id contains U+{:04X}: control, whitespace, '/', '\\', bidi-override and zero-width characters are not allowed",
            c as u32
        )));
    }
    Ok(())
}

/// Labels or match filters: at most `max_entries`, keys 1-[`MAX_KEY_BYTES`] bytes, values up
/// to [`MAX_VALUE_BYTES`] bytes, no control or invisible characters in either.
pub fn valid_map(
    what: &str,
    m: &BTreeMap<String, String>,
    max_entries: usize,
) -> Result<(), RunsError> {
    if m.len() > max_entries {
        return Err(RunsError::Invalid(format!(
            "{what}: at most {max_entries} entries, got {}",
            m.len()
        )));
    }
    for (k, v) in m {
        if k.is_empty() || k.len() > MAX_KEY_BYTES {
            return Err(RunsError::Invalid(format!(
                "{what}: keys must be 1-{MAX_KEY_BYTES} bytes (key of {} bytes)",
                k.len()
            )));
        }
        if v.len() > MAX_VALUE_BYTES {
            return Err(RunsError::Invalid(format!(
                "{what}.{k}: values must be at most {MAX_VALUE_BYTES} bytes, got {}",
                v.len()
            )));
        }
        if k.chars()
            .chain(v.chars())
            .any(|c| c.is_control() || is_invisible(c))
        {
            return Err(RunsError::Invalid(format!(
                "{what}.{k}: control and invisible (bidi, zero-width) characters are not allowed"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::persist;

    #[test]
    fn ids_fit_a_file_name_and_have_no_hidden_characters() {
        assert!(valid_id("build-1234").is_ok());
        assert!(valid_id("ünïcode-ok_1.2:3@x").is_ok());
        let longest = "a".repeat(MAX_ID_BYTES);
        assert!(valid_id(&longest).is_ok());
        // the longest id (and its temp file) can be saved
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = crate::runs::summary::Summary::new(&longest, Default::default(), 0);
        assert!(persist::save(dir.path(), &s).is_ok());
        for bad in [
            String::new(),
            "a".repeat(MAX_ID_BYTES + 1),
            "é".repeat(MAX_ID_BYTES / 2 + 1),
            "a/b".into(),
            "a\\b".into(),
            "a b".into(),
            "a\nb".into(),
            "safe\u{202E}txt.exe".into(),
            "zero\u{200B}width".into(),
            "iso\u{2066}late".into(),
            "\u{FEFF}bom".into(),
            ".".into(),
            "..".into(),
        ] {
            assert!(
                matches!(valid_id(&bad), Err(RunsError::Invalid(_))),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn labels_and_filters_are_bounded() {
        let ok: BTreeMap<String, String> = (0..MAX_LABELS)
            .map(|i| (format!("k{i}"), "v".repeat(MAX_VALUE_BYTES)))
            .collect();
        assert!(valid_map("labels", &ok, MAX_LABELS).is_ok());
        let mut too_many = ok.clone();
        too_many.insert("one-more".into(), "v".into());
        let e = valid_map("labels", &too_many, MAX_LABELS);
        assert!(
            matches!(&e, Err(RunsError::Invalid(m)) if m.contains("at most 32")),
            "{e:?}"
        );
        for (k, v) in [
            (String::new(), "v".to_string()),
            ("k".repeat(MAX_KEY_BYTES + 1), "v".into()),
            ("k".into(), "v".repeat(MAX_VALUE_BYTES + 1)),
            ("k".into(), "a\u{202E}b".into()),
            ("k\u{0}".into(), "v".into()),
        ] {
            let m = BTreeMap::from([(k.clone(), v)]);
            assert!(valid_map("match", &m, MAX_MATCH_KEYS).is_err(), "{k:?}");
        }
    }
}
