//! torchvision VGG16 weights (`features.N.weight` / `features.N.bias`) from `.safetensors`, as
//! published by torchvision (converted) and timm (`vgg16.tv_in1k`). Always the torchvision
//! input convention.

use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use shared::Convention;

use super::{BackboneError, ConvWeights, check_shapes};

/// torchvision's `features` indices of the 13 convolutions (ReLU and MaxPool fill the gaps).
pub const FEATURE_INDICES: [usize; 13] = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];

/// A tensor's shape and values.
type Tensor = (Vec<usize>, Vec<f32>);

pub fn read_safetensors(path: &Path) -> Result<(Vec<ConvWeights>, Option<Convention>), BackboneError> {
    let bytes = std::fs::read(path).map_err(|source| BackboneError::Read { path: path.into(), source })?;
    let format = |problem: String| BackboneError::Format { path: path.into(), problem };
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| format(format!("not a safetensors file: {e}")))?;
    let get = |name: &str| -> Result<Option<Tensor>, BackboneError> {
        // timm prefixes nothing; some checkpoints are saved from a wrapper with `model.`.
        let found = [name.to_string(), format!("model.{name}")].into_iter().find_map(|n| tensors.tensor(&n).ok());
        let Some(view) = found else { return Ok(None) };
        if view.dtype() != Dtype::F32 {
            return Err(format(format!("{name}: dtype {:?} is not F32", view.dtype())));
        }
        let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        Ok(Some((view.shape().to_vec(), values)))
    };
    let mut convs = Vec::new();
    let mut names = Vec::new();
    for (layer, index) in FEATURE_INDICES.iter().enumerate() {
        let name = format!("features.{index}.weight");
        let Some((dims, weight)) = get(&name)? else {
            return Err(BackboneError::MissingLayers { path: path.into(), found: layer, hint: format!(" ('{name}' is missing)") });
        };
        let bias = get(&format!("features.{index}.bias"))?.map(|(_, b)| b).unwrap_or_else(|| vec![0.0; dims[0]]);
        if dims.len() != 4 {
            return Err(BackboneError::Shape { path: path.into(), layer: layer + 1, name, found: dims, expected: vec![64, 3, 3, 3] });
        }
        names.push(name);
        convs.push(ConvWeights { out_channels: dims[0], in_channels: dims[1], weight, bias });
    }
    check_shapes(path, &convs, &names)?;
    Ok((convs, Some(Convention::Torchvision)))
}
