//! torchvision VGG16 weights (`features.N.weight` / `features.N.bias`) from `.safetensors`
//! (torchvision converted, timm's `vgg16.tv_in1k`) or a PyTorch `.pth` state dict
//! (torchvision's `vgg16-397923af.pth`). Always the torchvision input convention.

use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use shared::Convention;

use super::{BackboneError, ConvWeights, check_shapes};

/// torchvision's `features` indices of the 13 convolutions (ReLU and MaxPool fill the gaps).
pub const FEATURE_INDICES: [usize; 13] = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];

/// A tensor's shape and values.
type Tensor = (Vec<usize>, Vec<f32>);

fn le_f32(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

pub fn read_safetensors(path: &Path) -> Result<(Vec<ConvWeights>, Option<Convention>), BackboneError> {
    let bytes = std::fs::read(path).map_err(|cause| BackboneError::Read { path: path.into(), cause })?;
    let format = |problem: String| BackboneError::Format { path: path.into(), problem };
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| format(format!("not a safetensors file: {e}")))?;
    read_features(path, |name| {
        let Ok(view) = tensors.tensor(name) else { return Ok(None) };
        if view.dtype() != Dtype::F32 {
            return Err(format(format!("{name}: dtype {:?} is not F32", view.dtype())));
        }
        Ok(Some((view.shape().to_vec(), le_f32(view.data()))))
    })
}

pub fn read_pth(path: &Path) -> Result<(Vec<ConvWeights>, Option<Convention>), BackboneError> {
    let format = |problem: String| BackboneError::Format { path: path.into(), problem };
    let reader = pytorch_reader::PytorchReader::new(path).map_err(|e| format(format!("not a readable PyTorch file: {e}")))?;
    read_features(path, |name| {
        let Some(tensor) = reader.get(name) else { return Ok(None) };
        if tensor.dtype() != pytorch_reader::DType::F32 {
            return Err(format(format!("{name}: dtype {:?} is not float32", tensor.dtype())));
        }
        let bytes = tensor.read().map_err(|e| format(e.to_string()))?;
        Ok(Some((tensor.shape().to_vec(), le_f32(&bytes))))
    })
}

/// The 13 convolutions from `features.N.*` tensors, looked up by `get` (also under a `model.`
/// prefix, as checkpoints saved from a wrapper have it).
fn read_features(
    path: &Path,
    get: impl Fn(&str) -> Result<Option<Tensor>, BackboneError>,
) -> Result<(Vec<ConvWeights>, Option<Convention>), BackboneError> {
    let find = |name: &str| -> Result<Option<Tensor>, BackboneError> {
        match get(name)? {
            Some(t) => Ok(Some(t)),
            None => get(&format!("model.{name}")),
        }
    };
    let mut convs = Vec::new();
    let mut names = Vec::new();
    for (layer, index) in FEATURE_INDICES.iter().enumerate() {
        let name = format!("features.{index}.weight");
        let Some((dims, weight)) = find(&name)? else {
            return Err(BackboneError::MissingLayers { path: path.into(), found: layer, hint: format!(" ('{name}' is missing)") });
        };
        if dims.len() != 4 {
            return Err(BackboneError::Shape { path: path.into(), layer: layer + 1, name, found: dims, expected: vec![64, 3, 3, 3] });
        }
        let bias = find(&format!("features.{index}.bias"))?.map(|(_, b)| b).unwrap_or_else(|| vec![0.0; dims[0]]);
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

    /// A PyTorch zip checkpoint as `torch.save(state_dict)` writes it: `data.pkl` (a pickle of
    /// a dict of `_rebuild_tensor_v2` calls on persistent storages) and one file per storage.
    fn write_pth(path: &Path, weights: &Vgg16Weights) {
        use std::io::Write;
        let text = |out: &mut Vec<u8>, s: &str| {
            out.push(b'X');
            out.extend((s.len() as u32).to_le_bytes());
            out.extend(s.as_bytes());
        };
        let int = |out: &mut Vec<u8>, i: usize| {
            out.push(b'J');
            out.extend((i as i32).to_le_bytes());
        };
        let tuple = |out: &mut Vec<u8>, items: &[usize]| {
            out.push(b'(');
            for &i in items {
                int(out, i);
            }
            out.push(b't');
        };
        let mut pickle = vec![0x80, 2, b'}', b'('];
        let mut storages = Vec::new();
        for (c, i) in weights.convs.iter().zip(FEATURE_INDICES) {
            for (suffix, shape, values) in
                [("weight", vec![c.out_channels, c.in_channels, 3, 3], &c.weight), ("bias", vec![c.out_channels], &c.bias)]
            {
                let key = storages.len().to_string();
                text(&mut pickle, &format!("features.{i}.{suffix}"));
                pickle.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
                pickle.push(b'(');
                text(&mut pickle, "storage");
                pickle.extend(b"ctorch\nFloatStorage\n");
                text(&mut pickle, &key);
                text(&mut pickle, "cpu");
                int(&mut pickle, values.len());
                pickle.extend(b"tQ");
                int(&mut pickle, 0);
                tuple(&mut pickle, &shape);
                let strides: Vec<usize> = (0..shape.len()).map(|d| shape[d + 1..].iter().product()).collect();
                tuple(&mut pickle, &strides);
                pickle.push(0x89); // False: requires_grad
                pickle.extend(b"ccollections\nOrderedDict\n)R");
                pickle.extend(b"tR");
                storages.push((key, values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()));
            }
        }
        pickle.extend(b"u.");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        let mut entry = |name: &str, bytes: &[u8]| {
            zip.start_file(format!("archive/{name}"), stored).unwrap();
            zip.write_all(bytes).unwrap();
        };
        entry("data.pkl", &pickle);
        entry("byteorder", b"little");
        for (key, bytes) in &storages {
            entry(&format!("data/{key}"), bytes);
        }
        entry("version", b"3\n");
        zip.finish().unwrap();
    }

    #[test]
    fn reads_a_pytorch_state_dict() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vgg16.pth");
        let w = Vgg16Weights::random(4, 1.0 / 16.0, Convention::Torchvision);
        write_pth(&path, &w);
        let loaded = Vgg16Weights::load(&path, None).unwrap();
        assert_eq!(loaded.convs, w.convs);
        assert_eq!(loaded.convention, Convention::Torchvision);
        std::fs::write(&path, b"PK not really").unwrap();
        assert!(Vgg16Weights::load(&path, None).unwrap_err().to_string().contains("vgg16.pth"));
    }
}
