//! The network in Burn: VGG16 conv trunk + a small classification head.

pub mod classifier;
pub mod head;
pub mod vgg;
pub mod weights;

pub use classifier::Classifier;
pub use head::Head;
pub use vgg::Vgg16Trunk;

use burn::prelude::*;

/// Copies a tensor's values to the host as f32.
pub fn to_vec<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data_as::<f32>().as_slice::<f32>().expect("f32 data").to_vec()
}

/// Makes a float tensor from host values.
pub fn from_vec<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(burn::tensor::TensorData::new(values, shape), device)
}
