//! What a graph may ask of a box, checked before tract computes anything with it. A bundle may come
//! from anywhere (an upload to a live box, a file drop): a few hundred bytes of ONNX can ask tract
//! for terabytes while it loads, or for minutes per frame, and an allocation that fails aborts the
//! process (no panic to catch). So the graph is held to what the trainer writes, in three steps:
//!
//! 0. [`wire`], on the file's bytes before they are decoded: the messages the trainer writes,
//!    and a bounded count of fields and numbers (decoding one can take many times its bytes);
//! 1. [`proto`], on the protobuf before tract reads more of it: the trainer's operators, element
//!    types and raw constants only, a bounded count of nodes, of their inputs and of a constant's
//!    or a reshape's axes, its 2-D window attributes, and nothing computed from constants alone
//!    (tract evaluates those while it loads, before any size is known to us);
//! 2. [`typed`], on tract's typed graph, whose shapes are all concrete once the input is fixed,
//!    before it is optimized or run: each tensor's axes and size and all of them together, what a
//!    convolution pads and unfolds, what the convolutions and the matrix products' constants
//!    take once packed, and the multiply-adds of a frame.
//!
//! Three probes of about 250 crafted graphs (aborts, gigabytes, minutes a frame or to load) found
//! the bounds; each names what the trainer's own graphs need of it.

mod proto;
mod typed;
mod wire;

pub(super) use proto::check_proto;
pub use proto::{ELEMENT_TYPES, MAX_ATTRIBUTE_VALUES, MAX_NODE_INPUTS, MAX_NODES, MAX_RANK, ONNX_OPERATORS, WINDOW_ATTRIBUTES};
pub(super) use typed::check_typed;
pub use typed::{
    ALL_TENSORS_BYTES_PER_PIXEL, MACS_BESIDE_THE_TRUNK, MACS_PER_PIXEL, PACKED_WEIGHT_BYTES, TENSOR_BYTES_PER_PIXEL, UNFOLD_BYTES_PER_PIXEL,
};
pub use wire::MAX_FIELDS;
pub(super) use wire::check_wire;
