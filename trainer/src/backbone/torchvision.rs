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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use safetensors::tensor::TensorView;

    use super::*;
    use crate::backbone::Vgg16Weights;

    fn write(path: &Path, weights: &Vgg16Weights, skip: Option<usize>) {
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = weights
            .convs
            .iter()
            .zip(FEATURE_INDICES)
            .enumerate()
            .filter(|(layer, _)| Some(*layer) != skip)
            .flat_map(|(_, (c, i))| {
                let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
                [
                    (format!("features.{i}.weight"), vec![c.out_channels, c.in_channels, 3, 3], le(&c.weight)),
                    (format!("features.{i}.bias"), vec![c.out_channels], le(&c.bias)),
                ]
            })
            .collect();
        let views: HashMap<String, TensorView> =
            bytes.iter().map(|(n, shape, b)| (n.clone(), TensorView::new(Dtype::F32, shape.clone(), b).unwrap())).collect();
        std::fs::write(path, safetensors::serialize(&views, None).unwrap()).unwrap();
    }

    #[test]
    fn reads_torchvision_features_with_their_convention() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vgg16.safetensors");
        let w = Vgg16Weights::random(9, 1.0 / 16.0, Convention::Torchvision);
        write(&path, &w, None);
        let loaded = Vgg16Weights::load(&path, None).unwrap();
        assert_eq!(loaded.convs, w.convs);
        assert_eq!(loaded.convention, Convention::Torchvision);
    }

    #[test]
    fn a_missing_layer_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vgg16.safetensors");
        write(&path, &Vgg16Weights::random(9, 1.0 / 16.0, Convention::Torchvision), Some(4));
        let err = Vgg16Weights::load(&path, None).unwrap_err().to_string();
        assert!(err.contains("features.10.weight"), "{err}");
    }
}
