//! From a folder of labelled photos to checked, split, prepared training images.

pub mod augment;
pub mod conditions;
pub mod dedup;
pub mod scan;
pub mod split;
pub mod split_file;

pub use scan::{Dataset, Sample, ScanOptions, Skipped};
pub use split::{Split, SplitOptions};
