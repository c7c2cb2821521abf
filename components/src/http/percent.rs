//! Percent-decoding of URL paths and query values.

/// Decodes `%XX` escapes; a malformed escape or a result that is not UTF-8 is an error,
/// so that no two spellings of a name can slip past the checks made on the decoded text.
pub fn decode(s: &str) -> Result<String, String> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => out.push(b),
                None => return Err(format!("malformed percent escape in {s:?}")),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} does not decode to UTF-8"))
}

/// Encodes everything but unreserved characters and `/`, for paths sent to the renderers.
pub fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_rejects() {
        assert_eq!(decode("a%2Fb%20c").unwrap(), "a/b c");
        assert_eq!(decode("plain").unwrap(), "plain");
        assert!(decode("bad%2").is_err());
        assert!(decode("bad%zz").is_err());
        assert!(decode("%ff").is_err());
    }

    #[test]
    fn encode_round_trips() {
        for s in ["a b/c", "é%/..", "x\u{0}y"] {
            assert_eq!(decode(&encode_path(s)).unwrap(), s);
        }
    }
}
