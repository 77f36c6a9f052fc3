//! Step 0 of [`super`]: the ONNX file's bytes, before they are decoded. Decoding builds a value
//! for every field: an empty node is 2 bytes in the file and a couple of hundred in memory, a
//! packed int64 zero 1 byte and 8, so a file of a few hundred MB could ask for gigabytes before
//! any check saw a node (a million int64 zeros written one by one took three times their 8 MB).
//! This walks the protobuf's wire format through the messages the trainer writes, counting the
//! fields and numbers that decoding would make, and refuses a file with more than [`MAX_FIELDS`]
//! of them, or with a field the trainer never writes that holds more than a number (functions,
//! graphs or tensors inside attributes...).

/// The most fields and numbers an ONNX file may hold, all messages together: the trainer's hold
/// about a thousand (its weights are raw bytes: one field a tensor).
pub const MAX_FIELDS: usize = 100_000;

/// What a length-delimited field of a message is.
#[derive(Clone, Copy)]
enum Kind {
    /// A string or raw bytes: one value.
    Bytes,
    /// Packed numbers: at most one a byte.
    Numbers,
    /// A message, walked in turn.
    Message(&'static Schema),
}

/// A message the trainer writes: its name, and its length-delimited fields by number (fields of
/// numbers alone need no entry: each is one value).
struct Schema {
    name: &'static str,
    fields: &'static [(u64, Kind)],
}

use Kind::{Bytes, Message, Numbers};

// The ONNX messages (onnx.proto), with the fields the trainer's files may hold.
static MODEL: Schema = Schema {
    name: "ModelProto",
    fields: &[(2, Bytes), (3, Bytes), (4, Bytes), (6, Bytes), (7, Message(&GRAPH)), (8, Message(&OPSET)), (14, Message(&ENTRY))],
};
static OPSET: Schema = Schema { name: "OperatorSetIdProto", fields: &[(1, Bytes)] };
static ENTRY: Schema = Schema { name: "StringStringEntryProto", fields: &[(1, Bytes), (2, Bytes)] };
static GRAPH: Schema = Schema {
    name: "GraphProto",
    fields: &[
        (1, Message(&NODE)),
        (2, Bytes),
        (5, Message(&TENSOR)),
        (10, Bytes),
        (11, Message(&VALUE_INFO)),
        (12, Message(&VALUE_INFO)),
        (13, Message(&VALUE_INFO)),
        (16, Message(&ENTRY)),
    ],
};
static NODE: Schema = Schema {
    name: "NodeProto",
    fields: &[
        (1, Bytes),
        (2, Bytes),
        (3, Bytes),
        (4, Bytes),
        (5, Message(&ATTRIBUTE)),
        (6, Bytes),
        (7, Bytes),
        (8, Bytes),
        (9, Message(&ENTRY)),
    ],
};
static ATTRIBUTE: Schema =
    Schema { name: "AttributeProto", fields: &[(1, Bytes), (4, Bytes), (7, Numbers), (8, Numbers), (9, Bytes), (13, Bytes), (21, Bytes)] };
static TENSOR: Schema = Schema {
    name: "TensorProto",
    fields: &[
        (1, Numbers),
        (3, Message(&SEGMENT)),
        (4, Numbers),
        (5, Numbers),
        (6, Bytes),
        (7, Numbers),
        (8, Bytes),
        (9, Bytes),
        (10, Numbers),
        (11, Numbers),
        (12, Bytes),
        (13, Message(&ENTRY)),
        (16, Message(&ENTRY)),
    ],
};
static SEGMENT: Schema = Schema { name: "Segment", fields: &[] };
static VALUE_INFO: Schema = Schema { name: "ValueInfoProto", fields: &[(1, Bytes), (2, Message(&TYPE)), (3, Bytes), (4, Message(&ENTRY))] };
static TYPE: Schema = Schema { name: "TypeProto", fields: &[(1, Message(&TENSOR_TYPE)), (6, Bytes)] };
static TENSOR_TYPE: Schema = Schema { name: "TypeProto.Tensor", fields: &[(2, Message(&SHAPE))] };
static SHAPE: Schema = Schema { name: "TensorShapeProto", fields: &[(1, Message(&DIMENSION))] };
static DIMENSION: Schema = Schema { name: "Dimension", fields: &[(2, Bytes), (3, Bytes)] };

/// Step 0 (see the module), on the bytes of an ONNX model.
pub(in crate::runtime) fn check_wire(onnx: &[u8]) -> anyhow::Result<()> {
    let mut fields = 0;
    walk(onnx, &MODEL, &mut fields).map_err(|why| anyhow::anyhow!("the ONNX file {why}"))
}

/// Walks one message of `schema`, adding what decoding it would make to `fields`.
fn walk(mut bytes: &[u8], schema: &Schema, fields: &mut usize) -> Result<(), String> {
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let (number, wire_type) = (key >> 3, key & 7);
        *fields += match wire_type {
            0 => varint(&mut bytes).map(|_| 1)?,
            1 => take(&mut bytes, 8).map(|_| 1)?,
            5 => take(&mut bytes, 4).map(|_| 1)?,
            2 => {
                let length = varint(&mut bytes)?;
                let body = take(&mut bytes, length)?;
                match schema.fields.iter().find(|(n, _)| *n == number).map(|(_, kind)| *kind) {
                    Some(Bytes) => 1,
                    Some(Numbers) => body.len(),
                    Some(Message(inner)) => walk(body, inner, fields).map(|()| 1)?,
                    None => {
                        return Err(format!("has field {number} in one of its {}s, which no file this trainer writes has", schema.name));
                    }
                }
            }
            other => {
                return Err(format!(
                    "has a field of wire type {other} in one of its {}s, which no file this trainer writes has",
                    schema.name
                ));
            }
        };
        if *fields > MAX_FIELDS {
            return Err(format!(
                "holds over {MAX_FIELDS} fields and numbers (the trainer's hold about a thousand): decoding it could take many times its size"
            ));
        }
    }
    Ok(())
}

fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or("is cut short")?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("has a number over 10 bytes long".into())
}

fn take<'a>(bytes: &mut &'a [u8], length: u64) -> Result<&'a [u8], String> {
    let length = usize::try_from(length).ok().filter(|&n| n <= bytes.len()).ok_or("is cut short")?;
    let (taken, rest) = bytes.split_at(length);
    *bytes = rest;
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use tract_onnx::pb;

    use super::*;

    fn model(graph: pb::GraphProto) -> Vec<u8> {
        pb::ModelProto { ir_version: 7, producer_name: "p".into(), graph: Some(graph), ..Default::default() }.encode_to_vec()
    }

    #[test]
    fn what_the_trainer_writes_is_walked_and_counted() {
        let node = pb::NodeProto {
            input: vec!["x".into(), "w".into()],
            output: vec!["y".into()],
            op_type: "Conv".into(),
            attribute: vec![pb::AttributeProto { name: "pads".into(), ints: vec![1; 4], ..Default::default() }],
            ..Default::default()
        };
        let weight =
            pb::TensorProto { name: "w".into(), dims: vec![1, 3, 3, 3], data_type: 1, raw_data: vec![0; 108], ..Default::default() };
        let bytes = model(pb::GraphProto { node: vec![node; 10], initializer: vec![weight], ..Default::default() });
        let mut fields = 0;
        walk(&bytes, &MODEL, &mut fields).unwrap();
        assert!((50..200).contains(&fields), "{fields}");
    }

    #[test]
    fn many_small_fields_or_fields_the_trainer_never_writes_are_refused() {
        let empty_nodes = model(pb::GraphProto { node: vec![pb::NodeProto::default(); MAX_FIELDS], ..Default::default() });
        assert!(check_wire(&empty_nodes).unwrap_err().to_string().contains("holds over 100000 fields"));
        let zeros = pb::TensorProto { int64_data: vec![0; MAX_FIELDS + 1], ..Default::default() };
        let packed = model(pb::GraphProto { initializer: vec![zeros], ..Default::default() });
        assert!(packed.len() < MAX_FIELDS + 100, "a byte a zero");
        assert!(check_wire(&packed).unwrap_err().to_string().contains("holds over 100000 fields"));
        let tensor_attribute = pb::AttributeProto { name: "t".into(), t: Some(pb::TensorProto::default()), ..Default::default() };
        let node = pb::NodeProto { attribute: vec![tensor_attribute], ..Default::default() };
        let e = check_wire(&model(pb::GraphProto { node: vec![node], ..Default::default() })).unwrap_err().to_string();
        assert!(e.contains("has field 5 in one of its AttributeProtos"), "{e}");
        for cut in [&[0x3a, 0x05, 0x0a][..], &[0x08, 0xff]] {
            assert!(check_wire(cut).unwrap_err().to_string().contains("cut short"));
        }
    }
}
