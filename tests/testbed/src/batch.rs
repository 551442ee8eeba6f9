//! Query results carried to the wire as BSON. A find or getMore batch is written once,
//! from the store into the reply, instead of being copied into owned `Document`s that
//! the reply then encodes again: in a sync's copy those copies were a fifth of the
//! source testbed's CPU, which on a shared machine is taken from the system under test.
//!
//! A command's reply is a `Document` all the way to the wire (decoration, retry cache,
//! error paths), so the batch travels inside it as a binary value of a private subtype
//! under `cursor`, which `write_reply` writes as the array it stands for.

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document};

use crate::error::{CmdResult, CommandError, ErrorCode};

/// Marks the stand-in for an encoded batch (a user-defined subtype no driver sends us in
/// a reply's `cursor` document).
const ENCODED_BATCH: BinarySubtype = BinarySubtype::UserDefined(0xC2);

const ELEMENT_DOCUMENT: u8 = 0x03;
const ELEMENT_ARRAY: u8 = 0x04;

/// Documents encoded as the elements of a BSON array (`"0": {…}, "1": {…}, …`).
#[derive(Debug, Default)]
pub struct EncodedBatch {
    elements: Vec<u8>,
    len: usize,
}

impl EncodedBatch {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of the elements so far.
    pub fn byte_len(&self) -> usize {
        self.elements.len()
    }

    /// Appends a document given as its BSON.
    pub fn push_bytes(&mut self, document: &[u8]) {
        self.push_key();
        self.elements.extend_from_slice(document);
    }

    /// Appends a document, encoding it.
    pub fn push_document(&mut self, document: &Document) -> CmdResult<()> {
        let mark = self.elements.len();
        self.push_key();
        if let Err(error) = document.to_writer(&mut self.elements) {
            self.elements.truncate(mark);
            self.len -= 1;
            return Err(CommandError::new(
                ErrorCode::BadValue,
                format!("cannot encode a result document: {error}"),
            ));
        }
        Ok(())
    }

    /// Removes the last document (it made the batch too large).
    pub fn pop_to(&mut self, byte_len: usize) {
        self.elements.truncate(byte_len);
        self.len -= 1;
    }

    fn push_key(&mut self) {
        use std::io::Write;
        self.elements.push(ELEMENT_DOCUMENT);
        // Writing a number into a Vec cannot fail.
        let _ = write!(self.elements, "{}", self.len);
        self.elements.push(0);
        self.len += 1;
    }
}

/// The value that stands for the batch in a reply's `cursor` document.
impl From<EncodedBatch> for Bson {
    fn from(batch: EncodedBatch) -> Bson {
        Bson::Binary(Binary {
            subtype: ENCODED_BATCH,
            bytes: batch.elements,
        })
    }
}

/// Writes `reply` as BSON to `out`, writing an encoded batch in its `cursor` document
/// as the array it stands for.
pub fn write_reply(reply: &Document, out: &mut Vec<u8>) -> Result<(), bson::ser::Error> {
    let Some(Bson::Document(cursor)) = reply.get("cursor") else {
        return reply.to_writer(out);
    };
    if !cursor.values().any(is_encoded_batch) {
        return reply.to_writer(out);
    }
    let start = begin_document(out);
    for (key, value) in reply {
        if key == "cursor" {
            write_key(out, ELEMENT_DOCUMENT, key);
            let cursor_start = begin_document(out);
            for (key, value) in cursor {
                match value {
                    Bson::Binary(batch) if batch.subtype == ENCODED_BATCH => {
                        write_key(out, ELEMENT_ARRAY, key);
                        let array_start = begin_document(out);
                        out.extend_from_slice(&batch.bytes);
                        end_document(out, array_start);
                    }
                    other => write_element(out, key, other)?,
                }
            }
            end_document(out, cursor_start);
        } else {
            write_element(out, key, value)?;
        }
    }
    end_document(out, start);
    Ok(())
}

fn is_encoded_batch(value: &Bson) -> bool {
    matches!(value, Bson::Binary(binary) if binary.subtype == ENCODED_BATCH)
}

fn begin_document(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    start
}

fn end_document(out: &mut Vec<u8>, start: usize) {
    out.push(0);
    let length = (out.len() - start) as i32;
    out[start..start + 4].copy_from_slice(&length.to_le_bytes());
}

fn write_key(out: &mut Vec<u8>, element_type: u8, key: &str) {
    out.push(element_type);
    out.extend_from_slice(key.as_bytes());
    out.push(0);
}

/// One element, as the bson crate encodes it (a one-field document without its frame).
fn write_element(out: &mut Vec<u8>, key: &str, value: &Bson) -> Result<(), bson::ser::Error> {
    let mut single = Document::new();
    single.insert(key, value.clone());
    let mut encoded = Vec::new();
    single.to_writer(&mut encoded)?;
    out.extend_from_slice(&encoded[4..encoded.len() - 1]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn decode(bytes: &[u8]) -> Document {
        Document::from_reader(bytes).unwrap()
    }

    #[test]
    fn an_encoded_batch_is_written_as_the_array_it_stands_for() {
        let documents = [doc! {"_id": 1, "a": "x"}, doc! {"_id": 2, "b": [1, 2]}];
        let mut batch = EncodedBatch::default();
        batch.push_document(&documents[0]).unwrap();
        let mut second = Vec::new();
        documents[1].to_writer(&mut second).unwrap();
        batch.push_bytes(&second);
        assert_eq!(batch.len(), 2);
        let reply = doc! {
            "cursor": {"id": 7i64, "ns": "d.c", "firstBatch": Bson::from(batch)},
            "ok": 1.0,
            "operationTime": bson::Timestamp { time: 5, increment: 1 },
        };
        let mut out = Vec::new();
        write_reply(&reply, &mut out).unwrap();
        let expected = doc! {
            "cursor": {"id": 7i64, "ns": "d.c", "firstBatch": [documents[0].clone(), documents[1].clone()]},
            "ok": 1.0,
            "operationTime": bson::Timestamp { time: 5, increment: 1 },
        };
        assert_eq!(decode(&out), expected);
        let mut plain = Vec::new();
        expected.to_writer(&mut plain).unwrap();
        assert_eq!(out, plain, "byte for byte what the bson crate writes");
    }

    #[test]
    fn an_empty_batch_is_an_empty_array_and_other_replies_are_unchanged() {
        let reply = doc! {"cursor": {"nextBatch": Bson::from(EncodedBatch::default()), "id": 0i64}, "ok": 1.0};
        let mut out = Vec::new();
        write_reply(&reply, &mut out).unwrap();
        let empty: Vec<Bson> = Vec::new();
        assert_eq!(
            decode(&out),
            doc! {"cursor": {"nextBatch": empty, "id": 0i64}, "ok": 1.0}
        );
        let other = doc! {"cursor": {"firstBatch": [{"_id": 1}], "id": 0i64}, "n": 2};
        let mut out = Vec::new();
        write_reply(&other, &mut out).unwrap();
        assert_eq!(decode(&out), other);
    }

    #[test]
    fn a_document_taken_back_leaves_the_batch_as_before() {
        let mut batch = EncodedBatch::default();
        batch.push_document(&doc! {"_id": 1}).unwrap();
        let mark = batch.byte_len();
        batch.push_document(&doc! {"_id": 2}).unwrap();
        batch.pop_to(mark);
        batch.push_document(&doc! {"_id": 3}).unwrap();
        let reply = doc! {"cursor": {"firstBatch": Bson::from(batch)}};
        let mut out = Vec::new();
        write_reply(&reply, &mut out).unwrap();
        assert_eq!(
            decode(&out),
            doc! {"cursor": {"firstBatch": [{"_id": 1}, {"_id": 3}]}}
        );
    }
}
