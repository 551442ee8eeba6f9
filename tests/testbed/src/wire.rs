//! Wire framing (testbed reference §1): OP_MSG requests and replies, and the legacy
//! OP_QUERY hello that pymongo ≤ 4.17 sends first, answered with OP_REPLY.

use bson::{Bson, Document};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const OP_REPLY: i32 = 1;
pub const OP_QUERY: i32 = 2004;
pub const OP_MSG: i32 = 2013;

const FLAG_CHECKSUM_PRESENT: u32 = 1;
pub const FLAG_MORE_TO_COME: u32 = 1 << 1;
/// Bits a receiver must understand (the low 16); anything else there is an error.
const KNOWN_REQUIRED_FLAGS: u32 = FLAG_CHECKSUM_PRESENT | FLAG_MORE_TO_COME;

/// Largest message accepted: mongod's `maxMessageSizeBytes`.
pub const MAX_MESSAGE_SIZE: usize = 48_000_000;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("unsupported opcode {0}")]
    UnsupportedOpcode(i32),
}

/// A parsed request.
#[derive(Debug)]
pub enum Request {
    /// An OP_MSG with its kind-1 sequences folded into the body as arrays.
    Msg {
        request_id: i32,
        body: Document,
        more_to_come: bool,
    },
    /// A legacy OP_QUERY against `<db>.$cmd`.
    Query {
        request_id: i32,
        full_collection_name: String,
        query: Document,
    },
}

impl Request {
    pub fn request_id(&self) -> i32 {
        match self {
            Request::Msg { request_id, .. } | Request::Query { request_id, .. } => *request_id,
        }
    }
}

/// Reads one message. `Ok(None)` on a clean end of stream before a header.
pub async fn read_request<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<Request>, WireError> {
    let mut header = [0u8; 16];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error.into()),
    }
    let length = i32::from_le_bytes(header[0..4].try_into().unwrap_or_default());
    let request_id = i32::from_le_bytes(header[4..8].try_into().unwrap_or_default());
    let op_code = i32::from_le_bytes(header[12..16].try_into().unwrap_or_default());
    if length < 16 || length as usize > MAX_MESSAGE_SIZE {
        return Err(WireError::Malformed(format!(
            "message length {length} out of range"
        )));
    }
    let mut body = vec![0u8; length as usize - 16];
    reader.read_exact(&mut body).await?;
    match op_code {
        OP_MSG => parse_op_msg(request_id, &body).map(Some),
        OP_QUERY => parse_op_query(request_id, &body).map(Some),
        other => Err(WireError::UnsupportedOpcode(other)),
    }
}

fn parse_op_msg(request_id: i32, bytes: &[u8]) -> Result<Request, WireError> {
    if bytes.len() < 5 {
        return Err(WireError::Malformed("OP_MSG too short".into()));
    }
    let flags = u32::from_le_bytes(bytes[0..4].try_into().unwrap_or_default());
    let unknown_required = flags & 0xffff & !KNOWN_REQUIRED_FLAGS;
    if unknown_required != 0 {
        return Err(WireError::Malformed(format!(
            "unknown required flag bits {unknown_required:#x}"
        )));
    }
    // The checksum, when present, is the last four bytes; no client of ours sends one,
    // so it is stripped rather than validated.
    let end = if flags & FLAG_CHECKSUM_PRESENT != 0 {
        bytes
            .len()
            .checked_sub(4)
            .ok_or_else(|| WireError::Malformed("checksum missing".into()))?
    } else {
        bytes.len()
    };
    let mut position = 4;
    let mut body: Option<Document> = None;
    let mut sequences: Vec<(String, Vec<Bson>)> = Vec::new();
    while position < end {
        let kind = bytes[position];
        position += 1;
        match kind {
            0 => {
                let (document, used) = read_document(&bytes[position..end])?;
                if body.is_some() {
                    return Err(WireError::Malformed("more than one kind-0 section".into()));
                }
                body = Some(document);
                position += used;
            }
            1 => {
                let size = read_i32(&bytes[position..end])? as usize;
                if size < 4 || position + size > end {
                    return Err(WireError::Malformed("bad document sequence size".into()));
                }
                let section = &bytes[position + 4..position + size];
                let name_end = section.iter().position(|b| *b == 0).ok_or_else(|| {
                    WireError::Malformed("unterminated sequence identifier".into())
                })?;
                let identifier = String::from_utf8_lossy(&section[..name_end]).into_owned();
                let mut documents = Vec::new();
                let mut offset = name_end + 1;
                while offset < section.len() {
                    let (document, used) = read_document(&section[offset..])?;
                    documents.push(Bson::Document(document));
                    offset += used;
                }
                if sequences.iter().any(|(name, _)| *name == identifier) {
                    return Err(WireError::Malformed(format!(
                        "duplicate sequence {identifier}"
                    )));
                }
                sequences.push((identifier, documents));
                position += size;
            }
            other => {
                return Err(WireError::Malformed(format!(
                    "unknown section kind {other}"
                )))
            }
        }
    }
    let mut body = body.ok_or_else(|| WireError::Malformed("no kind-0 section".into()))?;
    for (identifier, documents) in sequences {
        if body.contains_key(&identifier) {
            return Err(WireError::Malformed(format!(
                "{identifier} given both inline and as a sequence"
            )));
        }
        body.insert(identifier, Bson::Array(documents));
    }
    Ok(Request::Msg {
        request_id,
        body,
        more_to_come: flags & FLAG_MORE_TO_COME != 0,
    })
}

fn parse_op_query(request_id: i32, bytes: &[u8]) -> Result<Request, WireError> {
    if bytes.len() < 4 {
        return Err(WireError::Malformed("OP_QUERY too short".into()));
    }
    let rest = &bytes[4..];
    let name_end = rest
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| WireError::Malformed("unterminated collection name".into()))?;
    let full_collection_name = String::from_utf8_lossy(&rest[..name_end]).into_owned();
    let after_name = name_end + 1 + 8; // numberToSkip, numberToReturn
    if rest.len() < after_name {
        return Err(WireError::Malformed("OP_QUERY truncated".into()));
    }
    let (query, _) = read_document(&rest[after_name..])?;
    Ok(Request::Query {
        request_id,
        full_collection_name,
        query,
    })
}

fn read_i32(bytes: &[u8]) -> Result<i32, WireError> {
    bytes
        .get(0..4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_le_bytes)
        .ok_or_else(|| WireError::Malformed("truncated int32".into()))
}

fn read_document(bytes: &[u8]) -> Result<(Document, usize), WireError> {
    let size = read_i32(bytes)? as usize;
    if size < 5 || size > bytes.len() {
        return Err(WireError::Malformed("bad document size".into()));
    }
    // The raw conversion is a fifth faster than the serde path of `from_reader`, and
    // every inserted document comes through here.
    let document = bson::RawDocument::from_bytes(&bytes[..size])
        .and_then(Document::try_from)
        .map_err(|error| WireError::Malformed(format!("invalid BSON: {error}")))?;
    Ok((document, size))
}

/// Encodes an OP_MSG reply with a single kind-0 section.
pub fn encode_msg_reply(
    request_id: i32,
    response_to: i32,
    body: &Document,
    more_to_come: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&0i32.to_le_bytes()); // messageLength, set below
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&response_to.to_le_bytes());
    out.extend_from_slice(&OP_MSG.to_le_bytes());
    let flags = if more_to_come { FLAG_MORE_TO_COME } else { 0 };
    out.extend_from_slice(&flags.to_le_bytes());
    out.push(0);
    // Serializing a Document into a Vec cannot fail for valid in-memory values.
    crate::batch::write_reply(body, &mut out).unwrap_or_default();
    let length = out.len() as i32;
    out[0..4].copy_from_slice(&length.to_le_bytes());
    out
}

/// Encodes an OP_REPLY with one document (for legacy OP_QUERY hello).
pub fn encode_op_reply(request_id: i32, response_to: i32, body: &Document) -> Vec<u8> {
    let mut document = Vec::with_capacity(256);
    body.to_writer(&mut document).unwrap_or_default();
    let length = 16 + 20 + document.len();
    let mut out = Vec::with_capacity(length);
    out.extend_from_slice(&(length as i32).to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&response_to.to_le_bytes());
    out.extend_from_slice(&OP_REPLY.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes()); // responseFlags
    out.extend_from_slice(&0i64.to_le_bytes()); // cursorID
    out.extend_from_slice(&0i32.to_le_bytes()); // startingFrom
    out.extend_from_slice(&1i32.to_le_bytes()); // numberReturned
    out.extend_from_slice(&document);
    out
}

pub async fn write_all<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &[u8],
) -> Result<(), WireError> {
    writer.write_all(bytes).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn op_msg(flags: u32, sections: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let length = 16 + 4 + sections.len();
        out.extend_from_slice(&(length as i32).to_le_bytes());
        out.extend_from_slice(&7i32.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&OP_MSG.to_le_bytes());
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(sections);
        out
    }

    fn kind0(document: &Document) -> Vec<u8> {
        let mut out = vec![0u8];
        document.to_writer(&mut out).unwrap();
        out
    }

    fn kind1(identifier: &str, documents: &[Document]) -> Vec<u8> {
        let mut payload = Vec::new();
        payload.extend_from_slice(identifier.as_bytes());
        payload.push(0);
        for document in documents {
            document.to_writer(&mut payload).unwrap();
        }
        let mut out = vec![1u8];
        out.extend_from_slice(&((payload.len() + 4) as i32).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    #[tokio::test]
    async fn folds_document_sequences_into_the_body_in_any_order() {
        let mut sections = kind1("documents", &[doc! {"_id": 1}, doc! {"_id": 2}]);
        sections.extend(kind0(&doc! {"insert": "c", "$db": "d"}));
        let bytes = op_msg(FLAG_MORE_TO_COME, &sections);
        let request = read_request(&mut bytes.as_slice()).await.unwrap().unwrap();
        match request {
            Request::Msg {
                body,
                more_to_come,
                request_id,
                ..
            } => {
                assert_eq!(request_id, 7);
                assert!(more_to_come);
                assert_eq!(body.get_array("documents").unwrap().len(), 2);
                assert_eq!(body.keys().next().unwrap(), "insert");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn rejects_unknown_required_flags_and_section_kinds() {
        let bytes = op_msg(1 << 3, &kind0(&doc! {"ping": 1}));
        assert!(read_request(&mut bytes.as_slice()).await.is_err());
        let mut sections = kind0(&doc! {"ping": 1});
        sections.push(7);
        let bytes = op_msg(0, &sections);
        assert!(read_request(&mut bytes.as_slice()).await.is_err());
    }

    #[tokio::test]
    async fn strips_a_checksum() {
        let mut bytes = op_msg(FLAG_CHECKSUM_PRESENT, &kind0(&doc! {"ping": 1}));
        bytes.extend_from_slice(&[1, 2, 3, 4]);
        let length = bytes.len() as i32;
        bytes[0..4].copy_from_slice(&length.to_le_bytes());
        assert!(read_request(&mut bytes.as_slice()).await.unwrap().is_some());
    }

    #[test]
    fn reply_has_one_kind0_section_and_response_to() {
        let reply = encode_msg_reply(5, 9, &doc! {"ok": 1.0}, false);
        assert_eq!(i32::from_le_bytes(reply[8..12].try_into().unwrap()), 9);
        assert_eq!(reply[20], 0);
        assert_eq!(
            i32::from_le_bytes(reply[0..4].try_into().unwrap()) as usize,
            reply.len()
        );
    }
}
