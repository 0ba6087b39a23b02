//! Zebra host queries on a raw TCP connection: `~HI` (host identification), `~HS` (host
//! status), `~HQES` (error and warning bits, asked when `~HS` is silent) and the SGD query `! U1 getvar "device.unique_id"` (the serial), with a bounded
//! reader and pure parsers for their answers.
//!
//! Parsers tell "need more bytes" ([`AnswerError::Incomplete`]) apart from "not the expected
//! shape" ([`AnswerError::Malformed`]), so the reader keeps reading only while an answer can
//! still become valid, and never past [`MAX_ANSWER_LEN`] bytes.
//!
//! This module does not judge devices (the parent module does) and never sees label bytes.

use std::io;
use std::time::Duration;

use sealprint_protocol::PrinterStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Host identification query.
pub(crate) const QUERY_HI: &[u8] = b"~HI";
/// Host status query.
pub(crate) const QUERY_HS: &[u8] = b"~HS";
/// Host query for the error and warning status.
pub(crate) const QUERY_HQES: &[u8] = b"~HQES";
/// SGD query for the device's serial. SGD must be lower case and end with CR LF.
pub(crate) const QUERY_UNIQUE_ID: &[u8] = b"! U1 getvar \"device.unique_id\"\r\n";

const STX: u8 = 0x02;
const ETX: u8 = 0x03;

/// The longest answer line (one STX/ETX frame or one quoted value) accepted.
pub(crate) const MAX_ANSWER_LINE: usize = 1024;
/// The most bytes buffered while waiting for one answer.
pub(crate) const MAX_ANSWER_LEN: usize = 4 * MAX_ANSWER_LINE;
/// The longest serial accepted.
const MAX_SERIAL_LEN: usize = 64;
/// The longest model or firmware string accepted (they end up in reasons for people).
const MAX_FIELD_LEN: usize = 64;

/// Why bytes could not be read as the expected answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AnswerError {
    /// The bytes so far are a valid beginning; more are needed.
    #[error("answer incomplete")]
    Incomplete,
    /// The bytes cannot become the expected answer.
    #[error("{0}")]
    Malformed(&'static str),
}

/// What `~HI` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostIdentification {
    /// Model, as the device claims it (proves nothing).
    pub model: String,
    /// Firmware version.
    pub firmware: String,
}

/// The flags of a `~HS` answer that decide whether the printer can print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HostStatus {
    /// String 1, field 2.
    pub paper_out: bool,
    /// String 1, field 3.
    pub paused: bool,
    /// String 2, field 3.
    pub head_up: bool,
}

impl HostStatus {
    /// The status a report carries.
    pub fn status(self) -> PrinterStatus {
        if self.paper_out {
            PrinterStatus::PaperOut
        } else if self.head_up {
            PrinterStatus::HeadOpen
        } else if self.paused {
            PrinterStatus::Paused
        } else {
            PrinterStatus::Ready
        }
    }
}

fn is_filler(b: u8) -> bool {
    matches!(b, b'\r' | b'\n' | b' ' | b'\t')
}

fn skip_filler(buf: &[u8], mut pos: usize) -> usize {
    while buf.get(pos).copied().is_some_and(is_filler) {
        pos += 1;
    }
    pos
}

fn printable(bytes: &[u8]) -> Result<&str, AnswerError> {
    if !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err(AnswerError::Malformed("non-printable bytes in answer"));
    }
    std::str::from_utf8(bytes).map_err(|_| AnswerError::Malformed("answer is not ascii"))
}

/// Reads `n` STX…ETX frames (each usually followed by CR LF), skipping CR, LF and blanks around
/// them. Returns the frame bodies and how many bytes they used.
fn frames(buf: &[u8], n: usize) -> Result<(Vec<&str>, usize), AnswerError> {
    let mut out = Vec::with_capacity(n);
    let mut pos = 0;
    while out.len() < n {
        pos = skip_filler(buf, pos);
        match buf.get(pos) {
            None => return Err(AnswerError::Incomplete),
            Some(&STX) => {}
            Some(_) => return Err(AnswerError::Malformed("answer does not start with STX")),
        }
        let body = &buf[pos + 1..];
        let Some(len) = body.iter().position(|&b| b == ETX) else {
            return Err(if body.len() > MAX_ANSWER_LINE {
                AnswerError::Malformed("answer line too long")
            } else if body.iter().any(|b| !(0x20..=0x7e).contains(b)) {
                AnswerError::Malformed("non-printable bytes in answer")
            } else {
                AnswerError::Incomplete
            });
        };
        if len > MAX_ANSWER_LINE {
            return Err(AnswerError::Malformed("answer line too long"));
        }
        out.push(printable(&body[..len])?);
        pos += len + 2;
    }
    Ok((out, skip_filler(buf, pos)))
}

fn flag(field: Option<&str>) -> Result<bool, AnswerError> {
    match field {
        Some("0") => Ok(false),
        Some("1") => Ok(true),
        _ => Err(AnswerError::Malformed("~HS flag is not 0 or 1")),
    }
}

fn numeric(field: Option<&str>) -> bool {
    field.is_some_and(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// Parses a `~HI` answer: `<STX>MODEL,FIRMWARE,DOTS_PER_MM,MEMORY[,OPTIONS]<ETX><CR><LF>`.
pub(crate) fn parse_hi(buf: &[u8]) -> Result<(HostIdentification, usize), AnswerError> {
    let (lines, used) = frames(buf, 1)?;
    let fields: Vec<&str> = lines[0].split(',').map(str::trim).collect();
    if fields.len() < 4 {
        return Err(AnswerError::Malformed("~HI answer has fewer than 4 fields"));
    }
    if fields[0].is_empty() || fields[1].is_empty() || fields[3].is_empty() {
        return Err(AnswerError::Malformed("~HI answer has an empty field"));
    }
    if fields[0].len() > MAX_FIELD_LEN || fields[1].len() > MAX_FIELD_LEN {
        return Err(AnswerError::Malformed("~HI model or firmware too long"));
    }
    if !numeric(Some(fields[2])) {
        return Err(AnswerError::Malformed("~HI dots per mm is not a number"));
    }
    let id = HostIdentification {
        model: fields[0].to_owned(),
        firmware: fields[1].to_owned(),
    };
    Ok((id, used))
}

/// Parses a `~HS` answer: three frames, `aaa,b,c,…` (b paper out, c paused), `mmm,n,o,…`
/// (o head up) and `xxxx,y`.
pub(crate) fn parse_hs(buf: &[u8]) -> Result<(HostStatus, usize), AnswerError> {
    let (lines, used) = frames(buf, 3)?;
    let one: Vec<&str> = lines[0].split(',').collect();
    let two: Vec<&str> = lines[1].split(',').collect();
    if one.len() < 3 || two.len() < 3 || lines[2].is_empty() {
        return Err(AnswerError::Malformed("~HS answer has too few fields"));
    }
    if !numeric(one.first().copied()) || !numeric(two.first().copied()) {
        return Err(AnswerError::Malformed(
            "~HS answer does not start with a number",
        ));
    }
    let status = HostStatus {
        paper_out: flag(one.get(1).copied())?,
        paused: flag(one.get(2).copied())?,
        head_up: flag(two.get(2).copied())?,
    };
    Ok((status, used))
}

/// Parses an SGD `getvar` answer: the value in double quotes (`"XXZEJ1234567"`), possibly
/// followed by CR LF. `"?"` (unknown variable) parses to `"?"`; the caller decides.
pub(crate) fn parse_quoted(buf: &[u8]) -> Result<(String, usize), AnswerError> {
    let start = skip_filler(buf, 0);
    match buf.get(start) {
        None => return Err(AnswerError::Incomplete),
        Some(b'"') => {}
        Some(_) => return Err(AnswerError::Malformed("getvar answer is not quoted")),
    }
    let body = &buf[start + 1..];
    let Some(len) = body.iter().position(|&b| b == b'"') else {
        return Err(if body.len() > MAX_ANSWER_LINE {
            AnswerError::Malformed("answer line too long")
        } else if body.iter().any(|b| !(0x20..=0x7e).contains(b)) {
            AnswerError::Malformed("non-printable bytes in answer")
        } else {
            AnswerError::Incomplete
        });
    };
    if len > MAX_ANSWER_LINE {
        return Err(AnswerError::Malformed("answer line too long"));
    }
    let value = printable(&body[..len])?;
    Ok((value.to_owned(), skip_filler(buf, start + len + 2)))
}

/// The error bits of a `~HQES` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HqesErrors {
    /// The error flag (1 = errors present).
    pub flag: bool,
    /// The first error group (8 hex digits).
    pub high: u32,
    /// The second error group: 1 media out, 2 ribbon out, 4 head open, 8 cutter fault,
    /// 0x10 head over temperature, 0x20 motor over temperature…
    pub low: u32,
}

impl HqesErrors {
    /// Whether any error is reported.
    pub fn any(self) -> bool {
        self.flag || self.high != 0 || self.low != 0
    }

    /// The status a report carries (never ready while an error is reported).
    pub fn status(self) -> PrinterStatus {
        if self.low & 0x3 != 0 {
            PrinterStatus::PaperOut
        } else if self.low & 0x4 != 0 {
            PrinterStatus::HeadOpen
        } else if self.any() {
            PrinterStatus::Unknown
        } else {
            PrinterStatus::Ready
        }
    }

    /// The errors in words, for reasons.
    pub fn describe(self) -> String {
        const NAMES: [(u32, &str); 6] = [
            (0x1, "media out"),
            (0x2, "ribbon out"),
            (0x4, "head open"),
            (0x8, "cutter fault"),
            (0x10, "head over temperature"),
            (0x20, "motor over temperature"),
        ];
        let named: Vec<&str> = NAMES
            .iter()
            .filter(|(bit, _)| self.low & bit != 0)
            .map(|(_, name)| *name)
            .collect();
        if named.is_empty() {
            format!("error bits {:08X} {:08X}", self.high, self.low)
        } else {
            named.join(", ")
        }
    }
}

/// Parses a `~HQES` answer: one STX…ETX frame whose body spans several CR LF lines, one of
/// them `ERRORS: F HHHHHHHH LLLLLLLL`.
pub(crate) fn parse_hqes(buf: &[u8]) -> Result<(HqesErrors, usize), AnswerError> {
    let start = skip_filler(buf, 0);
    match buf.get(start) {
        None => return Err(AnswerError::Incomplete),
        Some(&STX) => {}
        Some(_) => return Err(AnswerError::Malformed("answer does not start with STX")),
    }
    let body = &buf[start + 1..];
    let allowed = |b: &u8| (0x20..=0x7e).contains(b) || matches!(b, b'\r' | b'\n' | b'\t');
    let Some(len) = body.iter().position(|&b| b == ETX) else {
        return Err(if body.len() > MAX_ANSWER_LINE {
            AnswerError::Malformed("answer too long")
        } else if !body.iter().all(allowed) {
            AnswerError::Malformed("non-printable bytes in answer")
        } else {
            AnswerError::Incomplete
        });
    };
    let body = &body[..len];
    if len > MAX_ANSWER_LINE || !body.iter().all(allowed) {
        return Err(AnswerError::Malformed("malformed ~HQES answer"));
    }
    let text = std::str::from_utf8(body).map_err(|_| AnswerError::Malformed("not ascii"))?;
    let line = text
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("ERRORS:"))
        .ok_or(AnswerError::Malformed("~HQES answer has no ERRORS line"))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let hex = |f: Option<&&str>| {
        f.filter(|f| f.len() == 8)
            .and_then(|f| u32::from_str_radix(f, 16).ok())
            .ok_or(AnswerError::Malformed(
                "~HQES error group is not 8 hex digits",
            ))
    };
    let flag = match fields.first() {
        Some(&"0") => false,
        Some(&"1") => true,
        _ => return Err(AnswerError::Malformed("~HQES error flag is not 0 or 1")),
    };
    let errors = HqesErrors {
        flag,
        high: hex(fields.get(1))?,
        low: hex(fields.get(2))?,
    };
    Ok((errors, skip_filler(buf, start + 1 + len + 1)))
}

/// Checks a serial the device answered: what may be recorded as its identity.
pub(crate) fn valid_serial(value: &str) -> Option<&str> {
    let value = value.trim();
    let ok = !value.is_empty()
        && value != "?"
        && value.len() <= MAX_SERIAL_LEN
        && value.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(value)
}

/// A parser of one answer: the value and how many bytes it used.
pub(crate) type Parser<T> = fn(&[u8]) -> Result<(T, usize), AnswerError>;

/// Why a query got no usable answer.
#[derive(Debug)]
pub(crate) enum QueryFailure {
    /// Nothing at all came back within the answer timeout.
    Silent,
    /// Something came back, but not the expected answer (or only part of it in time).
    Garbled(&'static str),
    /// The device closed the connection.
    Closed,
    /// The connection failed.
    Io(io::ErrorKind),
}

/// One connection to a raw printer, with the bytes read but not yet used.
pub(crate) struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Connection {
    pub fn new(stream: TcpStream) -> Connection {
        // Queries are tiny; send them at once.
        let _ = stream.set_nodelay(true);
        Connection {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends `query` and reads until `parse` accepts an answer, the answer turns out malformed,
    /// or `within` has passed. Cancel safe in the sense that dropping it only loses the query.
    pub async fn query<T>(
        &mut self,
        query: &[u8],
        parse: Parser<T>,
        within: Duration,
    ) -> Result<T, QueryFailure> {
        let before = self.buf.len();
        match tokio::time::timeout(within, self.exchange(query, parse)).await {
            Ok(result) => result,
            Err(_) if self.buf.len() > before => Err(QueryFailure::Garbled(
                "answer incomplete within the timeout",
            )),
            Err(_) => Err(QueryFailure::Silent),
        }
    }

    async fn exchange<T>(&mut self, query: &[u8], parse: Parser<T>) -> Result<T, QueryFailure> {
        self.stream
            .write_all(query)
            .await
            .map_err(|e| QueryFailure::Io(e.kind()))?;
        let mut chunk = [0u8; 512];
        loop {
            match parse(&self.buf) {
                Ok((value, used)) => {
                    self.buf.drain(..used);
                    return Ok(value);
                }
                Err(AnswerError::Malformed(why)) => return Err(QueryFailure::Garbled(why)),
                Err(AnswerError::Incomplete) if self.buf.len() >= MAX_ANSWER_LEN => {
                    return Err(QueryFailure::Garbled("answer too long"));
                }
                Err(AnswerError::Incomplete) => {}
            }
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| QueryFailure::Io(e.kind()))?;
            if n == 0 {
                return Err(QueryFailure::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Gives back the stream, for writing a label after the queries.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HI: &[u8] = b"\x02ZD421-203dpi,V84.20.18Z,8,8176KB\x03\r\n";

    fn hs(paper_out: u8, paused: u8, head_up: u8) -> Vec<u8> {
        format!(
            "\x02030,{paper_out},{paused},1245,000,0,0,0,000,0,0,0\x03\r\n\
             \x02001,0,{head_up},0,0,2,6,0,00000000,1,000\x03\r\n\
             \x021234,0\x03\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn parses_hi() {
        let (id, used) = parse_hi(HI).expect("valid ~HI");
        assert_eq!(id.model, "ZD421-203dpi");
        assert_eq!(id.firmware, "V84.20.18Z");
        assert_eq!(used, HI.len());
        // Older firmware adds an options field; leading CR LF left from an earlier answer.
        let with_options = b"\r\n\x02ZT410-300dpi,V75.19.7Z,12,8176KB,CUTTER\x03\r\n";
        assert!(parse_hi(with_options).is_ok());
    }

    #[test]
    fn hi_needs_more_bytes_until_etx() {
        for end in 0..HI.len() - 2 {
            assert_eq!(parse_hi(&HI[..end]), Err(AnswerError::Incomplete), "{end}");
        }
        // The CR LF after ETX is optional: it may come later.
        assert_eq!(
            parse_hi(&HI[..HI.len() - 2]).map(|(_, n)| n),
            Ok(HI.len() - 2)
        );
    }

    #[test]
    fn refuses_garbage_hi() {
        for bad in [
            &b"ZD421,V84,8,8176KB\r\n"[..],
            b"\x02ZD421,V84,8\x03",
            b"\x02,V84,8,8176KB\x03",
            b"\x02ZD421,V84,eight,8176KB\x03",
            b"\x02ZD421,V84\x00,8,8176KB\x03",
            b"HTTP/1.1 400 Bad Request\r\n",
            b"\x02ZD421,V84,8,8176KB\x7f",
        ] {
            assert!(
                matches!(parse_hi(bad), Err(AnswerError::Malformed(_))),
                "{bad:?} should be malformed"
            );
        }
        let long_model = format!("\x02{},V84,8,8176KB\x03", "Z".repeat(MAX_FIELD_LEN + 1));
        assert!(matches!(
            parse_hi(long_model.as_bytes()),
            Err(AnswerError::Malformed(_))
        ));
        let mut long = vec![STX];
        long.extend(std::iter::repeat_n(b'A', MAX_ANSWER_LINE + 1));
        assert!(matches!(parse_hi(&long), Err(AnswerError::Malformed(_))));
    }

    #[test]
    fn parses_hs_flags() {
        let cases = [
            ((0, 0, 0), PrinterStatus::Ready),
            ((1, 0, 0), PrinterStatus::PaperOut),
            ((0, 1, 0), PrinterStatus::Paused),
            ((0, 0, 1), PrinterStatus::HeadOpen),
            ((1, 1, 1), PrinterStatus::PaperOut),
        ];
        for ((p, s, h), want) in cases {
            let bytes = hs(p, s, h);
            let (status, used) = parse_hs(&bytes).expect("valid ~HS");
            assert_eq!(status.status(), want);
            assert_eq!(used, bytes.len());
        }
    }

    #[test]
    fn hs_needs_all_three_lines() {
        let bytes = hs(0, 0, 0);
        for end in 0..bytes.len() - 2 {
            assert_eq!(
                parse_hs(&bytes[..end]),
                Err(AnswerError::Incomplete),
                "{end}"
            );
        }
    }

    #[test]
    fn refuses_garbage_hs() {
        for bad in [
            &b"\x02030,0,0\x03\r\n\x02001,0\x03\r\n\x021234,0\x03\r\n"[..],
            b"\x02030,2,0,1245\x03\r\n\x02001,0,0,0\x03\r\n\x021234,0\x03\r\n",
            b"\x02030,0,0,1245\x03\r\n\x02001,0,yes,0\x03\r\n\x021234,0\x03\r\n",
            b"\x02abc,0,0,1245\x03\r\n\x02001,0,0,0\x03\r\n\x021234,0\x03\r\n",
            b"\x02030,0,0,1245\x03\r\n\x02001,0,0,0\x03\r\n\x02\x03\r\n",
            b"\x02030,0,0,1245\x03\r\nOK\r\n",
        ] {
            assert!(
                matches!(parse_hs(bad), Err(AnswerError::Malformed(_))),
                "{bad:?} should be malformed"
            );
        }
    }

    #[test]
    fn parses_getvar_answers() {
        assert_eq!(
            parse_quoted(b"\"XXZEJ1234567\""),
            Ok(("XXZEJ1234567".to_owned(), 14))
        );
        assert_eq!(
            parse_quoted(b"\r\n\"D4J222603053\"\r\n").map(|(_, n)| n),
            Ok(18)
        );
        assert_eq!(parse_quoted(b"\"?\"").map(|(v, _)| v), Ok("?".to_owned()));
        assert_eq!(parse_quoted(b""), Err(AnswerError::Incomplete));
        assert_eq!(parse_quoted(b"\r\n\"XXZ"), Err(AnswerError::Incomplete));
        assert!(matches!(
            parse_quoted(b"XXZEJ1234567"),
            Err(AnswerError::Malformed(_))
        ));
        assert!(matches!(
            parse_quoted(b"\"XX\x01Z\""),
            Err(AnswerError::Malformed(_))
        ));
        let mut long = vec![b'"'];
        long.extend(std::iter::repeat_n(b'A', MAX_ANSWER_LINE + 1));
        assert!(matches!(
            parse_quoted(&long),
            Err(AnswerError::Malformed(_))
        ));
        // Once malformed, malformed whatever follows (the reader stops at the first verdict).
        long.push(b'"');
        assert!(matches!(
            parse_quoted(&long),
            Err(AnswerError::Malformed(_))
        ));
    }

    #[test]
    fn parses_hqes() {
        let answer = b"\x02\r\n PRINTER STATUS\r\n   ERRORS:         1 00000000 00000005\r\n   \
                       WARNINGS:       0 00000000 00000000\r\n\x03\r\n";
        let (errors, used) = parse_hqes(answer).expect("valid ~HQES");
        assert_eq!(used, answer.len());
        assert!(errors.any());
        assert_eq!(errors.status(), PrinterStatus::PaperOut);
        assert_eq!(errors.describe(), "media out, head open");
        let head = b"\x02 ERRORS: 1 00000000 00000004\r\n\x03";
        assert_eq!(
            parse_hqes(head).map(|(e, _)| e.status()),
            Ok(PrinterStatus::HeadOpen)
        );
        let fine = b"\x02 ERRORS: 0 00000000 00000000\r\n\x03";
        assert_eq!(parse_hqes(fine).map(|(e, _)| e.any()), Ok(false));
        for end in 0..answer.len() - 2 {
            assert_eq!(
                parse_hqes(&answer[..end]),
                Err(AnswerError::Incomplete),
                "{end}"
            );
        }
        for bad in [
            &b"\x02 WARNINGS: 0 00000000 00000000\x03"[..],
            b"\x02 ERRORS: 2 00000000 00000000\x03",
            b"\x02 ERRORS: 1 0000 00000000\x03",
            b"ERRORS: 1 00000000 00000001",
            b"\x02 ERRORS: 1 00000000 00000001\x00\x03",
        ] {
            assert!(
                matches!(parse_hqes(bad), Err(AnswerError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn checks_serials() {
        assert_eq!(valid_serial("XXZEJ1234567"), Some("XXZEJ1234567"));
        assert_eq!(valid_serial(" XXZEJ1234567 "), Some("XXZEJ1234567"));
        for bad in ["", "?", "  ", "two words", &"A".repeat(MAX_SERIAL_LEN + 1)] {
            assert_eq!(valid_serial(bad), None, "{bad:?}");
        }
    }
}
