//! Export: the trained model as a standard ONNX graph that takes the RGB bytes the edge has,
//! proven equal to the trainer's own predictions in tract before anything is written.

pub mod graph;
pub mod int8;
pub mod parity;
pub mod quantize;
pub mod write;

pub use write::{ExportInput, ExportReport, OpenSetExport, export};
