//! IPP messages (RFC 8010): a small encoder for the requests the agent sends and a bounded,
//! never-panicking decoder for the responses. What the attributes mean for verification is
//! judged in `facts`.
//!
//! # Main types
//! - [`Request`]: builds one request (version 2.0, operation id, request id, attribute groups).
//! - [`Message`]: a decoded response (status code, request id, groups of attributes).
//! - [`DecodeError`]: tells "need more bytes" apart from "not IPP".
//!
//! # What it does not do
//! No I/O (see `http`), no collections beyond skipping them, no dates, resolutions or ranges
//! beyond keeping their tag. It never sees label bytes: documents follow the encoded request
//! and are appended by the caller.

/// IPP operation: Print-Job.
pub(crate) const OP_PRINT_JOB: u16 = 0x0002;
/// IPP operation: Get-Printer-Attributes.
pub(crate) const OP_GET_PRINTER_ATTRIBUTES: u16 = 0x000B;

/// Delimiter tag: operation-attributes group.
pub(crate) const TAG_OPERATION: u8 = 0x01;
/// Delimiter tag: end of attributes.
pub(crate) const TAG_END: u8 = 0x03;
/// Delimiter tag: printer-attributes group.
pub(crate) const TAG_PRINTER: u8 = 0x04;

/// Value tag: integer.
pub(crate) const TAG_INTEGER: u8 = 0x21;
/// Value tag: boolean.
pub(crate) const TAG_BOOLEAN: u8 = 0x22;
/// Value tag: enum.
pub(crate) const TAG_ENUM: u8 = 0x23;
/// Value tag: begCollection.
const TAG_BEG_COLLECTION: u8 = 0x34;
/// Value tag: textWithLanguage.
const TAG_TEXT_LANG: u8 = 0x35;
/// Value tag: nameWithLanguage.
const TAG_NAME_LANG: u8 = 0x36;
/// Value tag: endCollection.
const TAG_END_COLLECTION: u8 = 0x37;
/// Value tag: textWithoutLanguage.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const TAG_TEXT: u8 = 0x41;
/// Value tag: nameWithoutLanguage.
pub(crate) const TAG_NAME: u8 = 0x42;
/// Value tag: keyword.
pub(crate) const TAG_KEYWORD: u8 = 0x44;
/// Value tag: uri.
pub(crate) const TAG_URI: u8 = 0x45;
/// Value tag: charset.
pub(crate) const TAG_CHARSET: u8 = 0x47;
/// Value tag: naturalLanguage.
pub(crate) const TAG_LANGUAGE: u8 = 0x48;
/// Value tag: mimeMediaType.
pub(crate) const TAG_MIME: u8 = 0x49;
/// Value tag: memberAttrName.
const TAG_MEMBER_NAME: u8 = 0x4A;
/// Extension tag (a 4-byte tag follows in the value); refused.
const TAG_EXTENSION: u8 = 0x7F;

/// The most attributes (values included) a decoded message may hold.
const MAX_VALUES: usize = 16 * 1024;
/// The deepest collection nesting accepted.
const MAX_DEPTH: usize = 16;
/// The longest string value kept (longer ones are cut; IPP allows 1023 octets for text).
const MAX_STRING: usize = 1023;

/// Why bytes are not an IPP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// The bytes so far are a valid beginning; more are needed.
    #[error("ipp message incomplete")]
    Incomplete,
    /// The bytes cannot be an IPP message.
    #[error("malformed ipp message: {0}")]
    Malformed(&'static str),
}

/// One attribute value, as far as the agent needs to understand it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// integer.
    Integer(i32),
    /// boolean.
    Boolean(bool),
    /// enum.
    Enum(i32),
    /// Any string-like value (text, name, keyword, uri, charset, language, mimeMediaType,
    /// with or without language), lossily decoded as UTF-8 and cut at 1023 bytes.
    Text(String),
    /// A value of another type (octetString, dateTime, resolution, range, collection,
    /// out-of-band…): its tag only.
    Other(u8),
}

impl Value {
    fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    fn as_int(&self) -> Option<i32> {
        match self {
            Value::Integer(n) | Value::Enum(n) => Some(*n),
            _ => None,
        }
    }
}

/// One attribute and its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attribute {
    /// The attribute's name.
    pub name: String,
    /// Its values, at least one.
    pub values: Vec<Value>,
}

/// One attribute group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    /// The delimiter tag (1 operation, 2 job, 4 printer, 5 unsupported…).
    pub tag: u8,
    /// Its attributes, in order.
    pub attributes: Vec<Attribute>,
}

/// A decoded IPP message (a response, for the agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// Major and minor version.
    pub version: (u8, u8),
    /// Status code (responses) or operation id (requests).
    pub code: u16,
    /// Request id.
    pub request_id: u32,
    /// Attribute groups, in order.
    pub groups: Vec<Group>,
    /// Where the data after end-of-attributes starts.
    pub data_offset: usize,
}

impl Message {
    /// Whether the status code is one of the successful ones (0x0000–0x00FF).
    pub fn is_success(&self) -> bool {
        self.code <= 0x00FF
    }

    /// The first attribute named `name` in a group tagged `group`.
    pub fn attribute(&self, group: u8, name: &str) -> Option<&Attribute> {
        self.groups
            .iter()
            .filter(|g| g.tag == group)
            .flat_map(|g| g.attributes.iter())
            .find(|a| a.name == name)
    }

    /// The first text value of an attribute of a group.
    pub fn text(&self, group: u8, name: &str) -> Option<&str> {
        self.attribute(group, name)?
            .values
            .first()
            .and_then(Value::as_text)
    }

    /// Every text value of an attribute of a group.
    pub fn texts(&self, group: u8, name: &str) -> Vec<&str> {
        self.attribute(group, name)
            .map(|a| a.values.iter().filter_map(Value::as_text).collect())
            .unwrap_or_default()
    }

    /// The first integer or enum value of an attribute of a group.
    pub fn int(&self, group: u8, name: &str) -> Option<i32> {
        self.attribute(group, name)?
            .values
            .first()
            .and_then(Value::as_int)
    }

    /// The first boolean value of an attribute of a group.
    pub fn boolean(&self, group: u8, name: &str) -> Option<bool> {
        match self.attribute(group, name)?.values.first() {
            Some(Value::Boolean(b)) => Some(*b),
            _ => None,
        }
    }

    /// The status message of a response, if any (cut, for reasons).
    pub fn status_message(&self) -> Option<&str> {
        self.text(TAG_OPERATION, "status-message")
    }
}

/// A bounded cursor over the input.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Incomplete)?;
        let bytes = self.buf.get(self.pos..end).ok_or(DecodeError::Incomplete)?;
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

fn text(bytes: &[u8]) -> String {
    let bytes = &bytes[..bytes.len().min(MAX_STRING)];
    String::from_utf8_lossy(bytes).into_owned()
}

fn decode_value(tag: u8, bytes: &[u8]) -> Result<Value, DecodeError> {
    let int = |bytes: &[u8]| -> Result<i32, DecodeError> {
        let four: [u8; 4] = bytes
            .try_into()
            .map_err(|_| DecodeError::Malformed("integer value is not 4 bytes"))?;
        Ok(i32::from_be_bytes(four))
    };
    Ok(match tag {
        TAG_INTEGER => Value::Integer(int(bytes)?),
        TAG_ENUM => Value::Enum(int(bytes)?),
        TAG_BOOLEAN => match bytes {
            [0] => Value::Boolean(false),
            [1] => Value::Boolean(true),
            _ => return Err(DecodeError::Malformed("boolean value is not 0 or 1")),
        },
        TAG_TEXT_LANG | TAG_NAME_LANG => {
            let mut r = Reader { buf: bytes, pos: 0 };
            let inner = |r: &mut Reader<'_>| -> Result<Value, DecodeError> {
                let lang_len = usize::from(r.u16()?);
                r.take(lang_len)?;
                let text_len = usize::from(r.u16()?);
                let value = r.take(text_len)?;
                if r.pos != bytes.len() {
                    return Err(DecodeError::Incomplete);
                }
                Ok(Value::Text(text(value)))
            };
            // Inside a value of known length, running short is malformed, not incomplete.
            inner(&mut r)
                .map_err(|_| DecodeError::Malformed("malformed text-with-language value"))?
        }
        0x40..=0x5F => Value::Text(text(bytes)),
        other => Value::Other(other),
    })
}

/// Decodes one IPP message. Never panics; reads at most `buf.len()` bytes.
///
/// # Errors
/// [`DecodeError::Incomplete`] when `buf` ends before end-of-attributes,
/// [`DecodeError::Malformed`] when it cannot be IPP.
pub(crate) fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let major = r.u8()?;
    let minor = r.u8()?;
    if !(1..=2).contains(&major) {
        return Err(DecodeError::Malformed("unsupported ipp version"));
    }
    let code = r.u16()?;
    let request_id = r.u32()?;
    let mut groups: Vec<Group> = Vec::new();
    let mut values = 0usize;
    let mut depth = 0usize;
    loop {
        let tag = r.u8()?;
        if tag == TAG_END {
            if depth != 0 {
                return Err(DecodeError::Malformed("unterminated collection"));
            }
            break;
        }
        if tag <= 0x0F {
            if depth != 0 {
                return Err(DecodeError::Malformed(
                    "group delimiter inside a collection",
                ));
            }
            if tag == 0 {
                return Err(DecodeError::Malformed("reserved delimiter tag"));
            }
            groups.push(Group {
                tag,
                attributes: Vec::new(),
            });
            continue;
        }
        if tag == TAG_EXTENSION {
            return Err(DecodeError::Malformed("extension tags are not supported"));
        }
        let name_len = usize::from(r.u16()?);
        let name = r.take(name_len)?;
        let value_len = usize::from(r.u16()?);
        let value = r.take(value_len)?;
        values += 1;
        if values > MAX_VALUES {
            return Err(DecodeError::Malformed("too many attribute values"));
        }
        let Some(group) = groups.last_mut() else {
            return Err(DecodeError::Malformed("attribute before any group"));
        };
        // Collections: members are skipped, the attribute keeps a placeholder value.
        match tag {
            TAG_BEG_COLLECTION => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(DecodeError::Malformed("collections nested too deep"));
                }
                if depth > 1 {
                    continue;
                }
            }
            TAG_END_COLLECTION => {
                depth = depth.checked_sub(1).ok_or(DecodeError::Malformed(
                    "endCollection without begCollection",
                ))?;
                continue;
            }
            TAG_MEMBER_NAME if depth == 0 => {
                return Err(DecodeError::Malformed("member name outside a collection"));
            }
            _ if depth > 0 => continue,
            _ => {}
        }
        let value = decode_value(tag, value)?;
        if name.is_empty() {
            let Some(last) = group.attributes.last_mut() else {
                return Err(DecodeError::Malformed("additional value without attribute"));
            };
            last.values.push(value);
        } else {
            group.attributes.push(Attribute {
                name: text(name),
                values: vec![value],
            });
        }
    }
    Ok(Message {
        version: (major, minor),
        code,
        request_id,
        groups,
        data_offset: r.pos,
    })
}

/// An IPP request being built: header, then groups and attributes in order.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    buf: Vec<u8>,
}

impl Request {
    /// A version 2.0 request with an operation-attributes group holding `attributes-charset`
    /// (utf-8), `attributes-natural-language` (en) and `printer-uri`.
    pub fn new(operation: u16, request_id: u32, printer_uri: &str) -> Request {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&[2, 0]);
        buf.extend_from_slice(&operation.to_be_bytes());
        buf.extend_from_slice(&request_id.to_be_bytes());
        buf.push(TAG_OPERATION);
        Request { buf }
            .attribute(TAG_CHARSET, "attributes-charset", b"utf-8")
            .attribute(TAG_LANGUAGE, "attributes-natural-language", b"en")
            .attribute(TAG_URI, "printer-uri", printer_uri.as_bytes())
    }

    /// Adds an attribute with one value. Names and values longer than 65535 bytes are cut
    /// (the agent sends only short ones).
    pub fn attribute(mut self, tag: u8, name: &str, value: &[u8]) -> Request {
        self.push(tag, name.as_bytes(), value);
        self
    }

    /// Adds an attribute with several values (a `1setOf`).
    pub fn attributes(mut self, tag: u8, name: &str, values: &[&str]) -> Request {
        for (i, value) in values.iter().enumerate() {
            let name = if i == 0 { name.as_bytes() } else { b"" };
            self.push(tag, name, value.as_bytes());
        }
        self
    }

    fn push(&mut self, tag: u8, name: &[u8], value: &[u8]) {
        let name = &name[..name.len().min(usize::from(u16::MAX))];
        let value = &value[..value.len().min(usize::from(u16::MAX))];
        self.buf.push(tag);
        // Lengths fit: both were cut to u16::MAX above.
        self.buf
            .extend_from_slice(&u16::try_from(name.len()).unwrap_or(u16::MAX).to_be_bytes());
        self.buf.extend_from_slice(name);
        self.buf
            .extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
        self.buf.extend_from_slice(value);
    }

    /// Ends the attributes; a document, if any, follows.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(TAG_END);
        self.buf
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A printer-attributes response as a test server sends it.
    pub(crate) fn response(status: u16, request_id: u32, attrs: &[(u8, &str, &[u8])]) -> Vec<u8> {
        let mut buf = vec![2, 0];
        buf.extend_from_slice(&status.to_be_bytes());
        buf.extend_from_slice(&request_id.to_be_bytes());
        buf.push(TAG_OPERATION);
        for (tag, name, value) in [
            (TAG_CHARSET, "attributes-charset", &b"utf-8"[..]),
            (TAG_LANGUAGE, "attributes-natural-language", b"en"),
        ] {
            push(&mut buf, tag, name, value);
        }
        buf.push(TAG_PRINTER);
        for (tag, name, value) in attrs {
            push(&mut buf, *tag, name, value);
        }
        buf.push(TAG_END);
        buf
    }

    fn push(buf: &mut Vec<u8>, tag: u8, name: &str, value: &[u8]) {
        buf.push(tag);
        buf.extend_from_slice(&(name.len() as u16).to_be_bytes());
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(&(value.len() as u16).to_be_bytes());
        buf.extend_from_slice(value);
    }

    #[test]
    fn encodes_a_request_byte_for_byte() {
        let bytes = Request::new(OP_GET_PRINTER_ATTRIBUTES, 7, "ipp://h/p")
            .attributes(TAG_KEYWORD, "requested-attributes", &["a", "bc"])
            .finish();
        let mut want = vec![2, 0, 0, 0x0B, 0, 0, 0, 7, TAG_OPERATION];
        push(&mut want, TAG_CHARSET, "attributes-charset", b"utf-8");
        push(
            &mut want,
            TAG_LANGUAGE,
            "attributes-natural-language",
            b"en",
        );
        push(&mut want, TAG_URI, "printer-uri", b"ipp://h/p");
        push(&mut want, TAG_KEYWORD, "requested-attributes", b"a");
        push(&mut want, TAG_KEYWORD, "", b"bc");
        want.push(TAG_END);
        assert_eq!(bytes, want);
        let decoded = decode(&bytes).expect("decodes");
        assert_eq!(decoded.code, OP_GET_PRINTER_ATTRIBUTES);
        assert_eq!(decoded.request_id, 7);
        assert_eq!(
            decoded.texts(TAG_OPERATION, "requested-attributes"),
            vec!["a", "bc"]
        );
        assert_eq!(decoded.data_offset, bytes.len());
    }

    #[test]
    fn decodes_values_collections_and_data() {
        let mut bytes = response(
            0x0001,
            9,
            &[
                (TAG_ENUM, "printer-state", &3i32.to_be_bytes()),
                (TAG_BOOLEAN, "printer-is-accepting-jobs", &[1]),
                (TAG_TEXT_LANG, "printer-info", b"\x00\x02en\x00\x03abc"),
                (TAG_BEG_COLLECTION, "media-col-default", b""),
                (TAG_MEMBER_NAME, "", b"media-size"),
                (TAG_BEG_COLLECTION, "", b""),
                (TAG_END_COLLECTION, "", b""),
                (TAG_END_COLLECTION, "", b""),
                (TAG_KEYWORD, "printer-state-reasons", b"none"),
            ],
        );
        let end = bytes.len();
        bytes.extend_from_slice(b"DATA");
        let m = decode(&bytes).expect("decodes");
        assert!(m.is_success());
        assert_eq!(m.int(TAG_PRINTER, "printer-state"), Some(3));
        assert_eq!(
            m.boolean(TAG_PRINTER, "printer-is-accepting-jobs"),
            Some(true)
        );
        assert_eq!(m.text(TAG_PRINTER, "printer-info"), Some("abc"));
        assert_eq!(m.text(TAG_PRINTER, "printer-state-reasons"), Some("none"));
        assert_eq!(m.data_offset, end);
    }

    #[test]
    fn tells_incomplete_from_malformed() {
        let bytes = response(0, 1, &[(TAG_KEYWORD, "printer-state-reasons", b"none")]);
        for end in 0..bytes.len() {
            assert_eq!(decode(&bytes[..end]), Err(DecodeError::Incomplete), "{end}");
        }
        for bad in [
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            b"\x02\x00\x00\x00\x00\x00\x00\x01\x44\x00\x01a\x00\x01b\x03",
            b"\x02\x00\x00\x00\x00\x00\x00\x01\x01\x21\x00\x01a\x00\x02xx\x03",
            b"\x02\x00\x00\x00\x00\x00\x00\x01\x01\x37\x00\x00\x00\x00\x03",
            b"\x02\x00\x00\x00\x00\x00\x00\x01\x01\x34\x00\x01a\x00\x00\x03",
        ] {
            assert!(
                matches!(decode(bad), Err(DecodeError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decoder_never_panics_on_mutated_responses(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
            cut in any::<usize>(),
        ) {
            let mut bytes = response(0, 1, &[
                (TAG_TEXT_LANG, "printer-info", b"\x00\x02en\x00\x03abc"),
                (TAG_BEG_COLLECTION, "c", b""),
                (TAG_MEMBER_NAME, "", b"m"),
                (TAG_INTEGER, "", &[0, 0, 0, 1]),
                (TAG_END_COLLECTION, "", b""),
                (TAG_ENUM, "printer-state", &[0, 0, 0, 3]),
            ]);
            for (at, b) in flips {
                let len = bytes.len();
                bytes[at % len] = b;
            }
            let cut = cut % (bytes.len() + 1);
            let _ = decode(&bytes[..cut]);
        }

        #[test]
        fn request_round_trips(
            id in any::<u32>(),
            values in proptest::collection::vec("[ -~]{0,40}", 1..6),
        ) {
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            let bytes = Request::new(OP_PRINT_JOB, id, "ipp://h/p")
                .attributes(TAG_NAME, "job-name", &refs)
                .finish();
            let m = decode(&bytes).expect("own requests decode");
            prop_assert_eq!(m.request_id, id);
            prop_assert_eq!(m.code, OP_PRINT_JOB);
            prop_assert_eq!(m.texts(TAG_OPERATION, "job-name"), refs);
        }
    }
}
