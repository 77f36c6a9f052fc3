//! The bad-input corpus: every file, bundle, stream and log a hostile or unlucky user could hand
//! the product, generated here (nothing large is committed), each run through the binary that
//! reads it. Each must give a correct answer or a clear error naming the input: never a panic
//! (exit 101), an abort or a signal, and never more than `RSS_BOUND` of memory (the child's peak
//! resident set, from `wait4`). The test prints how many cases ran and passed.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use e2e::bin;
use image::{ImageFormat, Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use testkit::webp;

/// The most memory any single bad input may cost a binary (issue 12: a 1-4 GB board).
const RSS_BOUND_MIB: u64 = 512;
/// The address space each run gets, as on a 4 GB board: an allocation the machine running the
/// tests would grant lazily (a 4 GB buffer that a read then fails to fill) fails there, and
/// aborts the process, which the case then reports as a crash.
const ADDRESS_SPACE_BOUND: libc::rlim_t = 4 << 30;

struct Ran {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    peak_mib: u64,
}

/// Runs a binary with `stdin` bytes; its exit, output and peak RSS. The child is reaped by
/// `wait4` (which gives its peak memory), not by std's `wait`.
#[allow(clippy::zombie_processes)]
fn run(name: &str, args: &[&str], stdin: Option<Vec<u8>>) -> Ran {
    let mut command = Command::new(bin(name));
    // SAFETY: setrlimit is async-signal-safe; the closure only calls it.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: ADDRESS_SPACE_BOUND, rlim_max: ADDRESS_SPACE_BOUND };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .args(args)
        // glibc reserves 64 MB of address space per malloc arena, up to 8 per core: on a
        // many-core machine that alone would approach the bound above.
        .env("MALLOC_ARENA_MAX", "4")
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let feeder = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let mut stderr = String::new();
    let _ = err.read_to_string(&mut stderr);
    let stdout = reader.join().unwrap();
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: wait4 on our own child's pid, with valid pointers; it reaps the child (std's
    // `wait` is then never called).
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert!(pid > 0, "wait4 failed");
    let (code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else {
        (None, libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)))
    };
    Ran { code, signal, stdout, stderr, peak_mib: usage.ru_maxrss as u64 / 1024 }
}

/// One case: what it is, and a check of what the binary did (`Err` says what was wrong).
struct Case {
    name: String,
    ran: Ran,
    check: Result<(), String>,
}

fn judge(name: impl Into<String>, ran: Ran, named: &str, success_ok: bool) -> Case {
    let check = if ran.signal.is_some() || ran.code == Some(101) || ran.code == Some(134) {
        Err(format!("crashed (exit {:?}, signal {:?}): {}", ran.code, ran.signal, ran.stderr))
    } else if ran.peak_mib > RSS_BOUND_MIB {
        Err(format!("peak memory {} MiB over {RSS_BOUND_MIB}", ran.peak_mib))
    } else if ran.code == Some(0) {
        if success_ok { Ok(()) } else { Err(format!("accepted: {}", ran.stdout)) }
    } else if !ran.stderr.contains(named) {
        Err(format!("the error does not name '{named}': {}", ran.stderr))
    } else if ran.stderr.lines().count() > 20 {
        Err(format!("not a clear error: {} lines", ran.stderr.lines().count()))
    } else {
        Ok(())
    };
    Case { name: name.into(), ran, check }
}

fn encode(img: &image::DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), format).unwrap();
    bytes
}

fn photo(seed: u64) -> RgbImage {
    trainer::fixtures::photo(seed as usize % 2, &mut ChaCha8Rng::seed_from_u64(seed))
}

/// A baseline JPEG's header (SOI, SOF0) declaring `w` x `h`, and nothing after it.
fn jpeg_declaring(w: u16, h: u16) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08];
    b.extend(h.to_be_bytes());
    b.extend(w.to_be_bytes());
    b.extend([0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01]);
    b.extend([0xFF, 0xD9]);
    b
}

/// A PNG whose header declares `w` x `h` (a valid IHDR with its CRC) and a tiny IDAT.
fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend(kind);
        c.extend(data);
        let mut crc_input = kind.to_vec();
        crc_input.extend(data);
        c.extend(crc32(&crc_input).to_be_bytes());
        c
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend(chunk(b"IHDR", &ihdr));
    b.extend(chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]));
    b.extend(chunk(b"IEND", &[]));
    b
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// The image files of the corpus: (file name, bytes).
fn image_files() -> Vec<(String, Vec<u8>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let real = encode(&photo(1).into(), ImageFormat::Jpeg);
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("empty.jpg".into(), Vec::new()),
        ("text.jpg".into(), b"hello, I am not a photo\n".to_vec()),
        ("random.jpg".into(), (0..4096).map(|_| rng.random()).collect()),
        ("zeros.jpg".into(), vec![0; 5 << 20]),
        ("soi_only.jpg".into(), vec![0xFF, 0xD8]),
        ("declares_20000.jpg".into(), jpeg_declaring(20000, 20000)),
        ("declares_65500.jpg".into(), jpeg_declaring(65500, 65500)),
        ("declares_8000_then_nothing.jpg".into(), jpeg_declaring(7000, 7000)),
        ("declares_40000.png".into(), png_declaring(40000, 40000)),
        ("declares_1x0.png".into(), png_declaring(1, 0)),
        ("gif.gif".into(), b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;".to_vec()),
        ("webp.webp".into(), b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00".to_vec()),
        ("bmp.bmp".into(), b"BM\x3a\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x18\x00\x00\x00\x00\x00\x04\x00\x00\x00\x13\x0b\x00\x00\x13\x0b\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\x00\x00\x00".to_vec()),
        ("whole.jpg".into(), real.clone()),
        ("garbage_after_end.jpg".into(), [real.clone(), b"trailing garbage".to_vec()].concat()),
        ("gray.jpg".into(), encode(&image::DynamicImage::ImageRgb8(photo(2)).grayscale(), ImageFormat::Jpeg)),
        ("rgba.png".into(), encode(&image::DynamicImage::ImageRgb8(photo(3)).to_rgba8().into(), ImageFormat::Png)),
        ("sixteen_bit.png".into(), encode(&image::DynamicImage::ImageRgb8(photo(4)).to_rgb16().into(), ImageFormat::Png)),
        ("one_pixel.jpg".into(), encode(&RgbImage::from_pixel(1, 1, Rgb([9, 9, 9])).into(), ImageFormat::Jpeg)),
        ("thin_1x4000.png".into(), encode(&RgbImage::from_pixel(1, 4000, Rgb([200, 30, 30])).into(), ImageFormat::Png)),
        // Centre-cropped, it was first scaled to S x 65535 S pixels (10 GB at 224).
        ("thin_1x65535.png".into(), encode(&RgbImage::from_pixel(1, 65535, Rgb([200, 30, 30])).into(), ImageFormat::Png)),
        ("big_6000x6000.png".into(), encode(&RgbImage::from_pixel(6000, 6000, Rgb([30, 200, 30])).into(), ImageFormat::Png)),
        ("cmyk.jpg".into(), {
            let mut out = Vec::new();
            let pixels: Vec<u8> = (0..64 * 48 * 4).map(|i| (i * 7 % 251) as u8).collect();
            jpeg_encoder::Encoder::new(&mut out, 90).encode(&pixels, 64, 48, jpeg_encoder::ColorType::Cmyk).unwrap();
            out
        }),
    ];
    for (i, cut) in [10, 100, 600, real.len() / 3, real.len() * 2 / 3, real.len() - 2].into_iter().enumerate() {
        files.push((format!("cut_{i}_at_{cut}.jpg"), real[..cut].to_vec()));
    }
    let png = encode(&photo(5).into(), ImageFormat::Png);
    files.push(("cut.png".into(), png[..png.len() / 2].to_vec()));
    let mut bad_crc = png.clone();
    let mid = bad_crc.len() / 2;
    bad_crc[mid] ^= 0xFF;
    files.push(("flipped_byte.png".into(), bad_crc));
    // WebP, whose decoder takes no allocation limits: a chunk declaring 4 GB (EXIF, read for the
    // orientation), an animation of 7000 x 7000 frames, a 64-pixel canvas around a bitstream
    // declaring 16383 x 16383, a whole photo, and the same cut.
    let one_pixel = webp::chunk(b"VP8L", b"/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07");
    let mut exif = webp::chunk(b"EXIF", &[]);
    exif[4..8].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    files.push(("exif_of_4_gb.webp".into(), webp::riff(&[webp::vp8x(0x08, 1, 1), one_pixel, exif])));
    files.push((
        "animated_7000.webp".into(),
        webp::riff(&[webp::vp8x(0x02, 7000, 7000), webp::chunk(b"ANIM", &[0; 6]), webp::chunk(b"ANMF", &[0; 16])]),
    ));
    files.push(("canvas_64_bitstream_16383.webp".into(), webp::riff(&[webp::vp8x(0, 64, 64), webp::vp8(16383, 16383)])));
    let whole = encode(&photo(6).into(), ImageFormat::WebP);
    files.push(("cut.webp".into(), whole[..whole.len() / 2].to_vec()));
    files.push(("whole.webp".into(), whole));
    files
}

/// Files that are no regular files: a symlink loop, a dangling link, a folder named like a photo.
fn odd_entries(dir: &Path) -> Vec<PathBuf> {
    let odd = dir.join("odd");
    std::fs::create_dir_all(&odd).unwrap();
    std::os::unix::fs::symlink(odd.join("loop.jpg"), odd.join("loop.jpg")).unwrap();
    std::os::unix::fs::symlink(odd.join("nowhere.jpg"), odd.join("dangling.jpg")).unwrap();
    vec![odd.join("loop.jpg"), odd.join("dangling.jpg")]
}

/// What refuses each hostile graph made of the trainer's own operators (`shared::runtime`'s
/// limits), so that a refusal for another reason does not hide a bound that no longer holds.
const HOSTILE_GRAPH_REASONS: &[(&str, &str)] = &[
    ("graph_conv_pads_1e6.bundle", "pads of 1000000"),
    ("graph_transpose_repeated_axis.bundle", "is not a permutation"),
    ("graph_constant_outer_product.bundle", "computes from constants only"),
    ("graph_broadcast_1gb.bundle", "would make a tensor"),
    ("graph_conv_unfolds_huge.bundle", "would unfold its input"),
    ("graph_conv_pads_its_input.bundle", "would pad its input"),
    ("graph_matmul_chain.bundle", "multiply-adds a frame"),
    ("graph_conv_one_output_channel.bundle", "once packed for tract's kernels"),
    ("graph_cast_to_f16.bundle", "a cast to element type 10"),
    ("graph_concat_30000_inputs.bundle", "30000 inputs"),
    ("graph_packed_constant.bundle", "holds over 100000 fields and numbers"),
    ("graph_long_chain.bundle", "nodes (at most 256)"),
    ("graph_constant_2000_axes.bundle", "2000 axes (the trainer's tensors have at most 6)"),
    ("graph_reshape_to_2000_axes.bundle", "takes a shape other than a constant of at most 6 axes"),
    ("graph_gather_adds_axes.bundle", "takes indices other than a constant of at most one axis"),
    ("graph_conv_kernel_from_weights.bundle", "has no kernel_shape"),
    ("graph_constants_left_of_matmuls.bundle", "once packed for tract's kernels"),
    ("graph_pool_7d.bundle", "kernel_shape of 7 values"),
];

/// Graphs the trainer never writes, each from the tiny bundle's `onnx` with one change: (bundle
/// name, ONNX bytes).
fn hostile_graphs(onnx: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    use prost::Message;
    use tract_onnx::pb;
    let good = pb::ModelProto::decode(onnx).unwrap();
    let altered = |change: &dyn Fn(&mut pb::GraphProto)| {
        let mut model = good.clone();
        change(model.graph.as_mut().unwrap());
        model.encode_to_vec()
    };
    let ints = |name: &str, values: Vec<i64>| pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values,
        ..Default::default()
    };
    // Constants as the trainer writes them: raw little-endian bytes.
    let floats = |name: &str, dims: Vec<i64>, value: f32| pb::TensorProto {
        name: name.into(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        raw_data: value.to_le_bytes().repeat(dims.iter().product::<i64>() as usize),
        dims,
        ..Default::default()
    };
    let int64s = |name: &str, values: &[i64]| pb::TensorProto {
        name: name.into(),
        data_type: pb::tensor_proto::DataType::Int64 as i32,
        dims: vec![values.len() as i64],
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    };
    let node = |op: &str, inputs: &[&str], output: &str| pb::NodeProto {
        op_type: op.into(),
        name: output.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    };
    // Keeps `tensor` live: the open-set score plus 1e-30 times its largest value.
    let into_the_score = |g: &mut pb::GraphProto, tensor: &str| {
        let output = g.output[1].name.clone();
        g.node.iter_mut().find(|n| n.output.contains(&output)).unwrap().output = vec!["score_before".into()];
        g.initializer.push(floats("tiny", vec![], 1e-30));
        let mut largest = node("ReduceMax", &[tensor], "largest");
        largest.attribute.push(pb::AttributeProto {
            name: "keepdims".into(),
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            i: 0,
            ..Default::default()
        });
        g.node.extend([
            largest,
            node("Mul", &["largest", "tiny"], "scaled_largest"),
            node("Add", &["score_before", "scaled_largest"], &output),
        ]);
    };
    // The image averaged to one pixel, spread over `channels`, then `narrows` convolutions of
    // one output channel each, `kernel` x `kernel` and padded by 1, over them.
    let one_pixel_wide_then_padded = |g: &mut pb::GraphProto, channels: i64, kernel: i64, narrows: usize| {
        let image = g.node.iter().find(|n| n.op_type == "Transpose").expect("the graph transposes the image").output[0].clone();
        g.initializer.push(floats("spread", vec![channels, 3, 1, 1], 0.01));
        g.node.push(node("GlobalAveragePool", &[&image], "pixel"));
        let mut spread = node("Conv", &["pixel", "spread"], "channels");
        spread.attribute.push(ints("kernel_shape", vec![1, 1]));
        g.node.push(spread);
        let mut sum = String::new();
        for i in 0..narrows {
            let (weights, narrowed) = (format!("narrow_{i}"), format!("narrowed_{i}"));
            g.initializer.push(floats(&weights, vec![1, channels, kernel, kernel], 0.01 * (i + 1) as f32));
            let mut narrow = node("Conv", &["channels", &weights], &narrowed);
            narrow.attribute.extend([ints("pads", vec![1; 4]), ints("kernel_shape", vec![kernel, kernel])]);
            g.node.push(narrow);
            sum = if i == 0 {
                narrowed
            } else {
                g.node.push(node("Add", &[&sum, &narrowed], &format!("sum_{i}")));
                format!("sum_{i}")
            };
        }
        into_the_score(g, &sum);
    };
    let image_as_float =
        |g: &pb::GraphProto| g.node.iter().find(|n| n.op_type == "Cast").expect("the graph casts the image").output[0].clone();
    vec![
        // The trainer's own operators, asking for what would abort the process (no panic to
        // catch) or take its memory or time: a Conv padded by a million (32 TB while planning)...
        (
            "graph_conv_pads_1e6.bundle",
            altered(&|g| {
                let conv = g.node.iter_mut().find(|n| n.op_type == "Conv").expect("the trunk has convolutions");
                conv.attribute.retain(|a| a.name != "pads");
                conv.attribute.push(ints("pads", vec![1_000_000; 4]));
            }),
        ),
        // ... a Transpose with a repeated axis (tract asked for 24 GB while typing it) ...
        (
            "graph_transpose_repeated_axis.bundle",
            altered(&|g| {
                let transpose = g.node.iter_mut().find(|n| n.op_type == "Transpose").expect("the graph transposes the image");
                transpose.attribute.retain(|a| a.name != "perm");
                transpose.attribute.push(ints("perm", vec![0, 0, 1, 2]));
            }),
        ),
        // ... two 120 KB constant vectors multiplied into a 3.6 GB matrix while loading ...
        (
            "graph_constant_outer_product.bundle",
            altered(&|g| {
                g.initializer.extend([floats("column", vec![30_000, 1], 1.0), floats("row", vec![1, 30_000], 1.0)]);
                g.node.push(node("MatMul", &["column", "row"], "outer"));
                into_the_score(g, "outer");
            }),
        ),
        // ... the image broadcast against 20 000 copies on every frame (1 GB) ...
        (
            "graph_broadcast_1gb.bundle",
            altered(&|g| {
                let image = image_as_float(g);
                g.initializer.push(floats("copies", vec![20_000, 1, 1, 1], 1.0));
                g.node.push(node("Mul", &[&image, "copies"], "broadcast"));
                into_the_score(g, "broadcast");
            }),
        ),
        // ... a 16 x 16 kernel given by its weights alone (tract takes a missing kernel_shape from
        // them, of any size: unfolded over 256 channels, 2.9 GB and 76 s a check at 224 pixels) ...
        (
            "graph_conv_kernel_from_weights.bundle",
            altered(&|g| {
                let image = g.node.iter().find(|n| n.op_type == "Transpose").expect("the graph transposes the image").output[0].clone();
                g.initializer.push(floats("deep", vec![1, 3, 16, 16], 0.01));
                g.node.push(node("Conv", &[&image, "deep"], "unfolded"));
                into_the_score(g, "unfolded");
            }),
        ),
        // ... a 3 x 3 kernel over 256 channels at full size (unfolded: twice the trainer's
        // largest) ...
        (
            "graph_conv_unfolds_huge.bundle",
            altered(&|g| {
                let image = g.node.iter().find(|n| n.op_type == "Transpose").expect("the graph transposes the image").output[0].clone();
                g.initializer.extend([floats("wide", vec![256, 3, 1, 1], 0.01), floats("deep", vec![1, 256, 3, 3], 0.01)]);
                let mut wide = node("Conv", &[&image, "wide"], "channels_256");
                wide.attribute.push(ints("kernel_shape", vec![1, 1]));
                let mut deep = node("Conv", &["channels_256", "deep"], "unfolded");
                deep.attribute.push(ints("kernel_shape", vec![3, 3]));
                g.node.extend([wide, deep]);
                into_the_score(g, "unfolded");
            }),
        ),
        // ... a 1 x 1 kernel padded by 1 around 500 000 channels of one pixel (tract pads the
        // input first: a million channels padded by 16 asked for 4.5 GB) ...
        ("graph_conv_pads_its_input.bundle", altered(&|g| one_pixel_wide_then_padded(g, 500_000, 1, 1))),
        // ... one output channel over a window of a million values, twice (tract packs the
        // weights for its kernels 64 channels at a time: 4 MB of them took 80 MB) ...
        ("graph_conv_one_output_channel.bundle", altered(&|g| one_pixel_wide_then_padded(g, 116_000, 3, 2))),
        // ... convolutions in half precision (135 times slower than in f32 for the same count of
        // multiply-adds) ...
        (
            "graph_cast_to_f16.bundle",
            altered(&|g| {
                let cast = g.node.iter_mut().find(|n| n.op_type == "Cast").expect("the graph casts the image");
                cast.attribute.iter_mut().find(|a| a.name == "to").expect("a cast says to what").i =
                    pb::tensor_proto::DataType::Float16 as i64;
            }),
        ),
        // ... a Concat of 30 000 inputs (32 s for tract to load) ...
        (
            "graph_concat_30000_inputs.bundle",
            altered(&|g| {
                let image = image_as_float(g);
                g.node.push(node("Concat", &vec![image.as_str(); 30_000], "wide"));
                into_the_score(g, "wide");
            }),
        ),
        // ... a million int64 zeros written as numbers, not raw bytes (each a byte in the file and 8, three times
        // over, in memory, before any check saw a node) ...
        (
            "graph_packed_constant.bundle",
            altered(&|g| {
                g.initializer.push(pb::TensorProto {
                    name: "zeros".into(),
                    data_type: pb::tensor_proto::DataType::Int64 as i32,
                    dims: vec![1_000_000],
                    int64_data: vec![0; 1_000_000],
                    ..Default::default()
                });
            }),
        ),
        // ... and ten products of 256 rows with one shared 16 MB matrix (10.7 G multiply-adds
        // for a 64-pixel input: minutes a frame on a board).
        (
            "graph_matmul_chain.bundle",
            altered(&|g| {
                let image = image_as_float(g);
                g.initializer.push(int64s("flat", &[-1]));
                g.initializer.push(int64s("spread", &(0..256 * 2048).map(|i| i % (64 * 64 * 3)).collect::<Vec<_>>()));
                g.initializer.push(int64s("rows", &[256, 2048]));
                g.initializer.push(floats("square", vec![2048, 2048], 1e-4));
                g.node.extend([
                    node("Reshape", &[&image, "flat"], "flat_image"),
                    node("Gather", &["flat_image", "spread"], "spread_image"),
                    node("Reshape", &["spread_image", "rows"], "chain_0"),
                ]);
                for i in 0..10 {
                    g.node.push(node("MatMul", &[&format!("chain_{i}"), "square"], &format!("chain_{}", i + 1)));
                }
                into_the_score(g, "chain_10");
            }),
        ),
        // Axes without number (tract types and optimizes a graph axis by axis): a constant of
        // 2 000 axes of one value added to the image (an abort at 3.5 GB) ...
        (
            "graph_constant_2000_axes.bundle",
            altered(&|g| {
                let image = image_as_float(g);
                g.initializer.push(floats("many_axes", vec![1; 2000], 1.0));
                g.node.push(node("Add", &[&image, "many_axes"], "broadcast"));
                into_the_score(g, "broadcast");
            }),
        ),
        // ... the image reshaped to 2 000 axes (an abort while optimizing) ...
        (
            "graph_reshape_to_2000_axes.bundle",
            altered(&|g| {
                let image = image_as_float(g);
                g.initializer.push(int64s("many_axes", &[[-1].as_slice(), &[1; 1999]].concat()));
                g.node.push(node("Reshape", &[&image, "many_axes"], "reshaped"));
                into_the_score(g, "reshaped");
            }),
        ),
        // ... a Gather whose indices add 5 axes (a chain of 70 made 491 and took 112 s to load) ...
        (
            "graph_gather_adds_axes.bundle",
            altered(&|g| {
                let image = image_as_float(g);
                g.initializer.push(pb::TensorProto {
                    name: "deep_index".into(),
                    data_type: pb::tensor_proto::DataType::Int64 as i32,
                    dims: vec![1; 6],
                    raw_data: 0i64.to_le_bytes().to_vec(),
                    ..Default::default()
                });
                g.node.push(node("Gather", &[&image, "deep_index"], "gathered"));
                into_the_score(g, "gathered");
            }),
        ),
        // ... three 2 MB constant rows on the left of matrix products (tract packs a constant
        // operand's rows 16 or more at a time: thirty 4 MB ones took 2.6 GB) ...
        (
            "graph_constants_left_of_matmuls.bundle",
            altered(&|g| {
                let image = image_as_float(g);
                let n: i64 = 500_000;
                g.initializer.push(int64s("flat", &[-1]));
                g.initializer.push(int64s("column", &[n, 1]));
                g.initializer.push(int64s("spread", &(0..n).map(|i| i % (64 * 64 * 3)).collect::<Vec<_>>()));
                g.node.extend([
                    node("Reshape", &[&image, "flat"], "flat_image"),
                    node("Gather", &["flat_image", "spread"], "spread_image"),
                    node("Reshape", &["spread_image", "column"], "image_column"),
                ]);
                for (i, row) in ["row_a", "row_b", "row_c"].into_iter().enumerate() {
                    g.initializer.push(floats(row, vec![1, n], 1e-6 * (i + 1) as f32));
                    g.node.push(node("MatMul", &[row, "image_column"], &format!("product_{row}")));
                }
                g.node.push(node("Add", &["product_row_a", "product_row_b"], "products_ab"));
                g.node.push(node("Add", &["products_ab", "product_row_c"], "products"));
                into_the_score(g, "products");
            }),
        ),
        // ... and a 7-D max pool (243 comparisons an output value, which no count of
        // multiply-adds sees: 2.6 s a frame for forty of them).
        (
            "graph_pool_7d.bundle",
            altered(&|g| {
                let pool = g.node.iter_mut().find(|n| n.op_type == "MaxPool").expect("the trunk has max pools");
                pool.attribute.retain(|a| a.name != "kernel_shape");
                pool.attribute.push(ints("kernel_shape", vec![3; 7]));
            }),
        ),
        // The manifest promises an open-set score; without it the box would never say `unknown`.
        ("graph_without_score.bundle", altered(&|g| g.output.truncate(1))),
        // tract divides by the stride while typing the graph: a panic, before.
        (
            "graph_stride_0.bundle",
            altered(&|g| {
                let pool = g.node.iter_mut().find(|n| n.op_type == "MaxPool").expect("the trunk has max pools");
                pool.attribute.retain(|a| a.name != "strides");
                pool.attribute.push(ints("strides", vec![0, 0]));
            }),
        ),
        // Logits where probabilities belong: printed as a "probability" of 3.2, before.
        (
            "graph_logits.bundle",
            altered(&|g| {
                let softmax = g.node.iter_mut().find(|n| n.op_type == "Softmax").expect("the head ends in a softmax");
                softmax.op_type = "Identity".into();
                softmax.attribute.clear();
            }),
        ),
        // A second input that nothing feeds: every frame failed, before.
        (
            "graph_two_inputs.bundle",
            altered(&|g| {
                let mut extra = g.input[0].clone();
                extra.name = "extra".into();
                g.input.push(extra);
            }),
        ),
        // No input at all: tract indexed an empty list (a panic), before.
        ("graph_no_input.bundle", altered(&|g| g.input.clear())),
        // The probabilities as f64: every frame failed with a type error, before.
        (
            "graph_f64_output.bundle",
            altered(&|g| {
                let output = g.output[0].name.clone();
                g.node.iter_mut().find(|n| n.output.contains(&output)).unwrap().output = vec!["as_f32".into()];
                let to = pb::AttributeProto {
                    name: "to".into(),
                    r#type: pb::attribute_proto::AttributeType::Int as i32,
                    i: pb::tensor_proto::DataType::Double as i64,
                    ..Default::default()
                };
                g.node.push(pb::NodeProto {
                    op_type: "Cast".into(),
                    name: "to_f64".into(),
                    input: vec!["as_f32".into()],
                    output: vec![output],
                    attribute: vec![to],
                    ..Default::default()
                });
            }),
        ),
        // An open-set score of -1e30: never above any threshold, so never `unknown`, before.
        (
            "graph_score_minus_1e30.bundle",
            altered(&|g| {
                let output = g.output[1].name.clone();
                g.node.iter_mut().find(|n| n.output.contains(&output)).unwrap().output = vec!["raw_score".into()];
                g.initializer.push(floats("minus_1e30", vec![], -1e30));
                g.node.push(pb::NodeProto {
                    op_type: "Mul".into(),
                    name: "scaled".into(),
                    input: vec!["raw_score".into(), "minus_1e30".into()],
                    output: vec![output],
                    ..Default::default()
                });
            }),
        ),
        // An operator the trainer never writes (here a 400-million-value constant that took 3 GB
        // from a 676-byte graph, before).
        (
            "graph_constant_of_shape.bundle",
            altered(&|g| {
                g.initializer.push(int64s("shape", &[400_000_000]));
                g.node.push(pb::NodeProto {
                    op_type: "ConstantOfShape".into(),
                    name: "big".into(),
                    input: vec!["shape".into()],
                    output: vec!["big".into()],
                    ..Default::default()
                });
            }),
        ),
        // 6000 more nodes: tract's optimizer takes time more than quadratic in a chain's length.
        (
            "graph_long_chain.bundle",
            altered(&|g| {
                let output = g.output[0].name.clone();
                let last = g.node.iter_mut().find(|n| n.output.contains(&output)).unwrap();
                last.output = vec!["chain_0".into()];
                for i in 0..6000 {
                    let to = if i == 5999 { output.clone() } else { format!("chain_{}", i + 1) };
                    g.node.push(pb::NodeProto {
                        op_type: "Identity".into(),
                        name: format!("chain_{i}"),
                        input: vec![format!("chain_{i}")],
                        output: vec![to],
                        ..Default::default()
                    });
                }
            }),
        ),
    ]
}

#[test]
fn every_bad_input_gets_an_answer_or_a_clear_error_within_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let model = e2e::tiny_bundle(dir.path());
    let model_s = model.to_str().unwrap().to_string();
    let mut cases = Vec::new();

    // Images, to `edge classify`: an answer or an error naming the file.
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let files = image_files();
    for (name, bytes) in &files {
        let path = images.join(name);
        std::fs::write(&path, bytes).unwrap();
        let ran = run("edge", &["classify", "--json", "--model", &model_s, path.to_str().unwrap()], None);
        cases.push(judge(format!("image {name}"), ran, name, true));
    }
    for path in odd_entries(dir.path()) {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let ran = run("edge", &["classify", "--model", &model_s, path.to_str().unwrap()], None);
        cases.push(judge(format!("image {name}"), ran, &name, false));
    }

    // Bundles, to `edge classify`: refused, naming the bundle, before any image is read.
    let good = std::fs::read(&model).unwrap();
    let image = images.join("whole.jpg");
    let mut bundles: Vec<(String, Vec<u8>)> = vec![
        ("empty.bundle".into(), Vec::new()),
        ("text.bundle".into(), b"not a bundle".to_vec()),
        ("random.bundle".into(), (0..10_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()),
        ("onnx.bundle".into(), shared::Bundle::read(&model).unwrap().onnx),
    ];
    for cut in [1, 8, 11, 12, 13, 100, 1000, good.len() / 2, good.len() - 100, good.len() - 1] {
        bundles.push((format!("cut_{cut}.bundle"), good[..cut].to_vec()));
    }
    for at in [9, 20, good.len() / 3, good.len() / 2, good.len() - 50, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        bundles.push((format!("flipped_{at}.bundle"), bad));
    }
    for (name, bytes) in &bundles {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let ran = run("edge", &["classify", "--model", path.to_str().unwrap(), image.to_str().unwrap()], None);
        cases.push(judge(format!("bundle {name}"), ran, name, false));
    }
    for special in ["/dev/zero", "/dev/null"] {
        let ran = run("edge", &["selftest", "--model", special], None);
        cases.push(judge(format!("bundle {special}"), ran, special, false));
    }
    // Bundles made whole (hashes and digest right) around a manifest the trainer never writes.
    type Change = Box<dyn Fn(&mut shared::Manifest)>;
    let crafted: Vec<(&str, Change)> = vec![
        ("input_size_100000.bundle", Box::new(|m| m.preprocessing.input_size = 100_000)),
        ("input_size_max.bundle", Box::new(|m| m.preprocessing.input_size = u32::MAX)),
        ("label_escapes.bundle", Box::new(|m| m.labels[0] = "../../escaped".into())),
        ("label_unknown.bundle", Box::new(|m| m.labels[0] = "unknown".into())),
        ("label_empty.bundle", Box::new(|m| m.labels[0] = String::new())),
        ("nan_threshold.bundle", Box::new(|m| m.open_set.as_mut().expect("the tiny bundle has an open-set score").threshold = f32::NAN)),
        // Two million empty labels: 2 MB in the file, 48 MB once read (20 MB took 518 MB).
        ("labels_2000000.bundle", Box::new(|m| m.labels = vec![String::new(); 2_000_000])),
    ];
    for (name, change) in crafted {
        let shared::Bundle { mut manifest, onnx, self_checks, .. } = shared::Bundle::read(&model).unwrap();
        change(&mut manifest);
        let path = dir.path().join(name);
        shared::Bundle::new(manifest, onnx, self_checks).write(&path).unwrap();
        let ran = run("edge", &["classify", "--model", path.to_str().unwrap(), image.to_str().unwrap()], None);
        let mut case = judge(format!("bundle {name}"), ran, name, false);
        if name.starts_with("labels_") && case.check.is_ok() && !case.ran.stderr.contains("longer than a bundle may") {
            case.check = Err(format!("refused, but not before its labels were read: {}", case.ran.stderr));
        }
        cases.push(case);
    }

    // Bundles made whole around a graph the trainer never writes (tract panicked on some, others
    // answered what is no answer): refused at load, naming the bundle.
    let graphs = hostile_graphs(&shared::Bundle::read(&model).unwrap().onnx);
    for (graph, _) in HOSTILE_GRAPH_REASONS {
        assert!(graphs.iter().any(|(name, _)| name == graph), "{graph} has a reason but no graph: renamed?");
    }
    for (name, onnx) in graphs {
        let shared::Bundle { manifest, self_checks, .. } = shared::Bundle::read(&model).unwrap();
        let path = dir.path().join(name);
        shared::Bundle::new(manifest, onnx, self_checks).write(&path).unwrap();
        for command in ["classify", "selftest"] {
            let args = if command == "classify" {
                vec![command, "--model", path.to_str().unwrap(), image.to_str().unwrap()]
            } else {
                vec![command, "--model", path.to_str().unwrap()]
            };
            let ran = run("edge", &args, None);
            let mut case = judge(format!("bundle {name} ({command})"), ran, name, false);
            // Refused for the right reason: the bound that a graph asking for too much crossed.
            let reason = HOSTILE_GRAPH_REASONS.iter().find(|(graph, _)| *graph == name).map(|(_, reason)| *reason);
            if let Some(reason) = reason.filter(|reason| case.check.is_ok() && !case.ran.stderr.contains(reason)) {
                case.check = Err(format!("refused, but not for '{reason}': {}", case.ran.stderr));
            }
            cases.push(case);
        }
        // `trainer inspect` shows what the bundle holds, and that the edge refuses its graph (the
        // graphs that load, and answer what is no answer, are refused at their first answer).
        let ran = run("trainer", &["inspect", path.to_str().unwrap()], None);
        let mut case = judge(format!("bundle {name} (trainer inspect)"), ran, name, true);
        let answers_badly = ["graph_logits.bundle", "graph_score_minus_1e30.bundle"].contains(&name);
        if case.check.is_ok() && case.ran.stdout.contains("graph refused") == answers_badly {
            case.check = Err(format!("inspect says the wrong thing of the graph: {}", case.ran.stdout));
        }
        cases.push(case);
    }

    // Config files, to `edge config --check` and `edge run --config`: endless or huge ones refused.
    let huge_config = dir.path().join("huge.toml");
    std::fs::write(&huge_config, format!("fps = 5\n#{}\n", "x".repeat(2 << 20))).unwrap();
    for config in ["/dev/zero", huge_config.to_str().unwrap()] {
        let ran = run("edge", &["config", "--check", config], None);
        cases.push(judge(format!("config {config}"), ran, config, false));
        let ran = run("edge", &["run", "--model", &model_s, "--source", "synthetic", "--max-frames", "1", "--config", config], None);
        cases.push(judge(format!("run --config {config}"), ran, config, false));
    }

    // Streams, to `edge run --source stdin:mjpeg`: bad frames counted, the stream ends cleanly.
    let whole = std::fs::read(&image).unwrap();
    let streams: Vec<(&str, Vec<u8>)> = vec![
        ("an empty stream", Vec::new()),
        ("noise", (0..20_000u32).map(|i| (i.wrapping_mul(40_503) >> 7) as u8).collect()),
        ("a frame declaring 20000x20000", [whole.clone(), jpeg_declaring(20000, 20000), whole.clone()].concat()),
        ("a frame declaring 65500x65500", [jpeg_declaring(65500, 65500), whole.clone()].concat()),
        ("cut frames", [whole[..whole.len() / 2].to_vec(), whole.clone(), whole[..40].to_vec()].concat()),
        ("forty whole frames", whole.repeat(40)),
    ];
    for (name, bytes) in streams {
        let ran = run("edge", &["run", "--source", "stdin:mjpeg", "--quiet", "--model", &model_s], Some(bytes));
        cases.push(judge(format!("stream: {name}"), ran, "", true));
    }

    // Result logs, to `edge log`.
    let logs: Vec<(&str, Vec<u8>)> = vec![
        ("empty.log", Vec::new()),
        ("text.log", b"2026-11-30 a text log\n".to_vec()),
        ("header_only.log", b"FCRESLOG".to_vec()),
        ("random.log", (0..3000u32).map(|i| (i.wrapping_mul(97) >> 3) as u8).collect()),
    ];
    for (name, bytes) in logs {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let ran = run("edge", &["log", path.to_str().unwrap()], None);
        cases.push(judge(format!("log {name}"), ran, name, true));
    }

    // The whole image corpus in a training folder: the trainer trains on the good photos and
    // names every file it skipped.
    let data = dir.path().join("data");
    trainer::fixtures::write_dataset(&data, &["stripes", "columns"], 8, 3).unwrap();
    for (name, bytes) in &files {
        std::fs::write(data.join("stripes").join(format!("bad_{name}")), bytes).unwrap();
    }
    let trunk = dir.path().join("trunk.onnx");
    trainer::fixtures::write_trunk_onnx(&trunk, 1.0 / 16.0, 9).unwrap();
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let args = [
        "train",
        "--data",
        &p(&data),
        "--backbone",
        &p(&trunk),
        "--out",
        &p(&dir.path().join("run")),
        "--input-size",
        "32",
        "--no-export",
        "--json",
    ];
    let ran = run("trainer", &args, None);
    let mut case = judge("trainer on the image corpus", ran, "", true);
    if case.check.is_ok() {
        let summary: serde_json::Value = serde_json::from_str(&case.ran.stdout).unwrap();
        let skipped: Vec<String> =
            summary["skipped_files"].as_array().unwrap().iter().map(|s| s["path"].as_str().unwrap().to_string()).collect();
        let accepted: Vec<&str> =
            files.iter().map(|(n, _)| n.as_str()).filter(|n| !skipped.iter().any(|s| s.ends_with(&format!("bad_{n}")))).collect();
        // What it may train on: the photos that decode whole.
        let fine = [
            "whole.jpg",
            "garbage_after_end.jpg",
            "gray.jpg",
            "rgba.png",
            "sixteen_bit.png",
            "one_pixel.jpg",
            "thin_1x4000.png",
            "thin_1x65535.png",
            "big_6000x6000.png",
            "cmyk.jpg",
            "webp.webp",
            "whole.webp",
        ];
        if let Some(bad) = accepted.iter().find(|n| !fine.contains(n)) {
            case.check = Err(format!("trained on {bad}"));
        }
    }
    cases.push(case);

    // A class folder named like a refusal: its answers would read as refusals. Refused before
    // any photo is decoded, naming the folder.
    std::fs::rename(data.join("columns"), data.join("unknown")).unwrap();
    let out2 = p(&dir.path().join("run2"));
    let args: Vec<&str> = args.iter().map(|a| if a.ends_with("/run") { out2.as_str() } else { a }).collect();
    let ran = run("trainer", &args, None);
    cases.push(judge("trainer on a class named unknown", ran, "\"unknown\"", false));

    let failed: Vec<String> = cases.iter().filter_map(|c| c.check.as_ref().err().map(|e| format!("{}: {e}", c.name))).collect();
    let peak = cases.iter().map(|c| c.ran.peak_mib).max().unwrap_or(0);
    let worst = cases.iter().max_by_key(|c| c.ran.peak_mib).map_or("", |c| c.name.as_str());
    eprintln!("bad-input corpus: {} cases ran, {} passed; peak memory {peak} MiB ({worst})", cases.len(), cases.len() - failed.len());
    assert!(cases.len() >= 60, "the corpus has {} cases", cases.len());
    assert!(failed.is_empty(), "{} of {} cases failed:\n{}", failed.len(), cases.len(), failed.join("\n"));
}
