//! A 3x3 convolution (stride 1, padding 1, then bias and, if asked, ReLU) by Winograd's
//! F(4x4, 3x3) algorithm, on channels-last `[H, W, C]` maps: what VGG16's trunk is made of. The
//! trainer's frozen-trunk features run it, and so does every graph tract loads
//! ([`crate::runtime::winograd_op`]), so the board gets the same speed.
//!
//! Why: a trunk pass is most of a cold training run and all of a frame on the board, and a
//! direct or im2col convolution (tract's, Burn's, libtorch's on the CPU) spends 9 multiply-adds
//! per output and input channel. Winograd's algorithm (Lavin & Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2016) computes each 4x4 output tile from a 6x6 input tile with
//! 36 products per channel pair instead of 144, as 36 matrix products `[tiles, C] x [C, K]` run by
//! the `gemm` crate, between cheap linear transforms of the input tiles and of the products.
//! float32 rounding grows by about one decimal digit (1e-6 to 1e-5 of the largest output per
//! layer, more with more channels; 4.5e-5 through VGG16's 13), far inside what a frozen trunk's
//! features need; the export's cross-check and parity gate still check them.

use std::ops::Range;

use rayon::prelude::*;

/// `B^T`: the input tile transform (6x6), applied to rows then columns.
fn input_transform(s: [&[f32]; 6], d: &mut [&mut [f32]; 6]) {
    let n = d[0].len();
    let [s0, s1, s2, s3, s4, s5] = s.map(|row| &row[..n]);
    let [d0, d1, d2, d3, d4, d5] = d;
    let (d1, d2, d3, d4, d5) = (&mut d1[..n], &mut d2[..n], &mut d3[..n], &mut d4[..n], &mut d5[..n]);
    for i in 0..n {
        let (a0, a1, a2, a3, a4, a5) = (s0[i], s1[i], s2[i], s3[i], s4[i], s5[i]);
        d0[i] = 4.0 * a0 - 5.0 * a2 + a4;
        d1[i] = -4.0 * (a1 + a2) + a3 + a4;
        d2[i] = 4.0 * (a1 - a2) - a3 + a4;
        d3[i] = 2.0 * (a3 - a1) - a2 + a4;
        d4[i] = 2.0 * (a1 - a3) - a2 + a4;
        d5[i] = 4.0 * a1 - 5.0 * a3 + a5;
    }
}

/// `A^T`: the output transform (4x6), 6 product rows to 4 output rows.
fn output_transform(m: [&[f32]; 6], d: &mut [&mut [f32]; 4]) {
    let n = d[0].len();
    let [m0, m1, m2, m3, m4, m5] = m.map(|row| &row[..n]);
    let [d0, d1, d2, d3] = d;
    let (d1, d2, d3) = (&mut d1[..n], &mut d2[..n], &mut d3[..n]);
    for i in 0..n {
        let (p12, q12, p34, q34) = (m1[i] + m2[i], m1[i] - m2[i], m3[i] + m4[i], m3[i] - m4[i]);
        d0[i] = m0[i] + p12 + p34;
        d1[i] = q12 + 2.0 * q34;
        d2[i] = p12 + 4.0 * p34;
        d3[i] = q12 + 8.0 * q34 + m5[i];
    }
}

/// `G`: the kernel transform (6x3).
const G: [[f32; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// Tiles per block of work: as many as keep a block's transformed inputs (or its products, for
/// as many output channels) within this many bytes, a core's L2 cache (1 MiB on the machines
/// measured). With the early layers, 3136 tiles at 224 pixels, in blocks, the whole trunk ran
/// 1.2-1.3x faster than with every layer whole.
const BLOCK_BYTES: usize = 1 << 20;
/// Fewer tiles than this make the matrix products too short, and each block re-reads the
/// transformed kernels (9.4 MB to 38 MB for 256 and 512 channels): the layers of 228 channels and
/// more (VGG16's 256 and 512) work in blocks of [`DEEP_BLOCK_TILES`] instead.
const MIN_BLOCK_TILES: usize = 32;
/// Tiles per block of the deep layers: at 224 pixels each of them is one block (196 tiles or
/// fewer), and at larger inputs a thread's buffers stay under 40 MB.
const DEEP_BLOCK_TILES: usize = 256;

/// One convolution's kernels, transformed once: 36 matrices `[C, K]`.
pub struct WinogradConv {
    in_channels: usize,
    out_channels: usize,
    /// `U[p][c][k]`, position `p` of the 6x6 transform.
    kernels: Vec<f32>,
    bias: Vec<f32>,
    /// ReLU fused into the output transform (the trainer's trunk); a graph's own ReLU node follows
    /// otherwise.
    relu: bool,
}

impl std::fmt::Debug for WinogradConv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WinogradConv({} -> {} channels, relu: {})", self.in_channels, self.out_channels, self.relu)
    }
}

/// Buffers reused from one convolution to the next of a pass (and from block to block).
#[derive(Default)]
pub struct Scratch {
    transformed: Vec<f32>,
    products: Vec<f32>,
}

thread_local! {
    /// Each thread's buffers, kept from one convolution and frame to the next: a block needs a
    /// megabyte or more, which would otherwise be allocated and faulted in again for every layer
    /// of every frame.
    static THREAD_SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// `f` with this thread's [`Scratch`], or a fresh one while that is in use further up the
/// thread's stack (a rayon thread that, waiting on its own products, runs another block).
pub fn with_thread_scratch<T>(f: impl FnOnce(&mut Scratch) -> T) -> T {
    THREAD_SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => f(&mut Scratch::default()),
    })
}

impl WinogradConv {
    /// The bytes of the transformed kernels for `in_channels` -> `out_channels` (36 floats for
    /// each pair, against 9 in the weights).
    pub fn kernel_bytes(in_channels: usize, out_channels: usize) -> usize {
        36usize.saturating_mul(in_channels).saturating_mul(out_channels).saturating_mul(size_of::<f32>())
    }

    /// From ONNX-ordered weights `[K, C, 3, 3]` and a bias of `K` values.
    pub fn new(in_channels: usize, out_channels: usize, weight: &[f32], bias: &[f32], relu: bool) -> Self {
        assert_eq!(weight.len(), out_channels * in_channels * 9, "3x3 kernels [K, C, 3, 3]");
        assert_eq!(bias.len(), out_channels);
        let (c_n, k_n) = (in_channels, out_channels);
        let mut kernels = vec![0f32; 36 * c_n * k_n];
        for k in 0..k_n {
            for c in 0..c_n {
                let g = &weight[(k * c_n + c) * 9..(k * c_n + c + 1) * 9];
                // G g G^T, 6x6.
                let mut gg = [[0f32; 3]; 6];
                for (i, row) in gg.iter_mut().enumerate() {
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = (0..3).map(|t| G[i][t] * g[t * 3 + j]).sum();
                    }
                }
                for (i, row) in gg.iter().enumerate() {
                    for (j, gj) in G.iter().enumerate() {
                        kernels[((i * 6 + j) * c_n + c) * k_n + k] = (0..3).map(|t| row[t] * gj[t]).sum();
                    }
                }
            }
        }
        Self { in_channels, out_channels, kernels, bias: bias.to_vec(), relu }
    }

    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// Rows of 4x4 tiles per block of work: blocks of about [`BLOCK_BYTES`], whole tile rows, so
    /// that a block's outputs are one slab of the output map.
    fn rows_per_block(&self, map: Map) -> usize {
        let per_block = BLOCK_BYTES / (36 * 4 * self.in_channels.max(self.out_channels));
        let per_block = if per_block < MIN_BLOCK_TILES { DEEP_BLOCK_TILES } else { per_block };
        (per_block / map.tiles_x).max(1)
    }

    /// The `[h, w, K]` output of an `[h, w, C]` map, on this thread: tile by tile, in blocks of
    /// tiles, the inputs transformed, multiplied by the kernels, the products transformed back.
    pub fn forward(&self, x: &[f32], h: usize, w: usize, scratch: &mut Scratch) -> Vec<f32> {
        let mut out = vec![0f32; h * w * self.out_channels];
        self.forward_into(x, h, w, scratch, &mut out);
        out
    }

    /// [`Self::forward`] into `out` (`h * w * K` values).
    pub fn forward_into(&self, x: &[f32], h: usize, w: usize, scratch: &mut Scratch, out: &mut [f32]) {
        let map = self.map(x, h, w, out);
        if out.is_empty() {
            return;
        }
        self.blocks_in_turn(x, map, self.rows_per_block(map), scratch, out, false);
    }

    /// [`Self::forward_into`] on the threads of rayon's current pool (tract's, inside a graph):
    /// blocks side by side where there are enough of them to keep every thread busy (the wide
    /// early maps), else one block at a time with its 36 matrix products side by side (the deep
    /// layers, where one block holds the whole map and each thread reads only its share of the
    /// kernels).
    pub fn forward_parallel_into(&self, x: &[f32], h: usize, w: usize, out: &mut [f32]) {
        let map = self.map(x, h, w, out);
        if out.is_empty() {
            return;
        }
        let rows = self.rows_per_block(map);
        let threads = rayon::current_num_threads();
        if threads > 1 && map.tiles_y.div_ceil(rows) < 2 * threads {
            with_thread_scratch(|scratch| self.blocks_in_turn(x, map, rows, scratch, out, true));
        } else {
            let rows = rows.min(map.tiles_y.div_ceil(threads)).max(1);
            out.par_chunks_mut(self.slab_len(map, rows))
                .enumerate()
                .for_each(|(b, slab)| with_thread_scratch(|scratch| self.block(x, map, map.block(b, rows), scratch, slab, false)));
        }
    }

    /// The map's blocks of `rows` tile rows one after the other (`parallel`: each one's matrix
    /// products on rayon's threads).
    fn blocks_in_turn(&self, x: &[f32], map: Map, rows: usize, scratch: &mut Scratch, out: &mut [f32], parallel: bool) {
        for (b, slab) in out.chunks_mut(self.slab_len(map, rows)).enumerate() {
            self.block(x, map, map.block(b, rows), scratch, slab, parallel);
        }
    }

    /// The output values of a block of `rows` tile rows (4 pixel rows each; the last block of a
    /// map may hold fewer).
    fn slab_len(&self, map: Map, rows: usize) -> usize {
        4 * rows * map.w * self.out_channels
    }

    /// The map's tiles, its input and output checked.
    fn map(&self, x: &[f32], h: usize, w: usize, out: &[f32]) -> Map {
        assert_eq!(x.len(), h * w * self.in_channels, "an [h, w, C] map");
        assert_eq!(out.len(), h * w * self.out_channels, "an [h, w, K] output");
        Map { h, w, tiles_x: w.div_ceil(4), tiles_y: h.div_ceil(4) }
    }

    /// One block of tile rows, into `out`: the output rows `4 * rows.start..`, as many as the
    /// block covers. `parallel`: its 36 matrix products on rayon's threads.
    fn block(&self, x: &[f32], map: Map, rows: Range<usize>, scratch: &mut Scratch, out: &mut [f32], parallel: bool) {
        let (c_n, k_n) = (self.in_channels, self.out_channels);
        let tiles = rows.start * map.tiles_x..rows.end * map.tiles_x;
        let count = tiles.len();
        let Scratch { transformed, products } = scratch;
        // Every value of both buffers is written (no zeroing): by the input transform, and by
        // the matrix products.
        transformed.resize(36 * count * c_n, 0.0);
        products.resize(36 * count * k_n, 0.0);
        transform_inputs(x, map, c_n, tiles.clone(), transformed);
        let product = |p: usize, dst: &mut [f32]| {
            let lhs = &transformed[p * count * c_n..(p + 1) * count * c_n];
            matmul(dst, lhs, &self.kernels[p * c_n * k_n..(p + 1) * c_n * k_n], count, c_n, k_n);
        };
        if parallel {
            products.par_chunks_mut(count * k_n).enumerate().for_each(|(p, dst)| product(p, dst));
        } else {
            products.chunks_mut(count * k_n).enumerate().for_each(|(p, dst)| product(p, dst));
        }
        self.transform_outputs(products, map, tiles, out);
    }

    /// The products of a block of tiles back to 4x4 outputs, plus the bias (and the ReLU), into
    /// `out`: the block's rows of the `[h, w, K]` map (the parts of border tiles outside the map
    /// are dropped).
    fn transform_outputs(&self, products: &[f32], map: Map, block: Range<usize>, out: &mut [f32]) {
        let k_n = self.out_channels;
        let count = block.len();
        let first_row = block.start / map.tiles_x * 4;
        let mut half: Vec<Vec<f32>> = vec![vec![0f32; k_n]; 24];
        let mut quad: Vec<Vec<f32>> = vec![vec![0f32; k_n]; 4];
        for (t, tile) in block.enumerate() {
            let (ty, tx) = (tile / map.tiles_x, tile % map.tiles_x);
            let product = |i: usize, j: usize| {
                let at = ((i * 6 + j) * count + t) * k_n;
                &products[at..at + k_n]
            };
            // Along the product's rows, then its columns.
            for j in 0..6 {
                let mut dst: [&mut [f32]; 4] = rows_mut(&mut half[j * 4..j * 4 + 4]);
                output_transform([0, 1, 2, 3, 4, 5].map(|i| product(i, j)), &mut dst);
            }
            for a in 0..4 {
                let y = ty * 4 + a;
                if y >= map.h {
                    break;
                }
                let mut dst: [&mut [f32]; 4] = rows_mut(&mut quad);
                output_transform([0, 1, 2, 3, 4, 5].map(|j| &half[j * 4 + a][..]), &mut dst);
                for (b, values) in quad.iter().enumerate() {
                    let xx = tx * 4 + b;
                    if xx >= map.w {
                        break;
                    }
                    let at = ((y - first_row) * map.w + xx) * k_n;
                    let pixel = &mut out[at..at + k_n];
                    if self.relu {
                        for ((o, v), bias) in pixel.iter_mut().zip(values).zip(&self.bias) {
                            *o = (v + bias).max(0.0);
                        }
                    } else {
                        for ((o, v), bias) in pixel.iter_mut().zip(values).zip(&self.bias) {
                            *o = v + bias;
                        }
                    }
                }
            }
        }
    }
}

/// A map's size, and its 4x4 output tiles per row.
#[derive(Clone, Copy)]
struct Map {
    h: usize,
    w: usize,
    tiles_x: usize,
    tiles_y: usize,
}

impl Map {
    /// The tile rows of block `b`, of `rows` tile rows each (the last one may be shorter).
    fn block(&self, b: usize, rows: usize) -> Range<usize> {
        b * rows..((b + 1) * rows).min(self.tiles_y)
    }
}

/// The 6x6 input tiles of a block of tiles, transformed, into `transformed`: position `(i, j)`'s
/// matrix `[tiles, C]`, one row per tile. Pixels outside the map are zeros (the padding).
fn transform_inputs(x: &[f32], map: Map, c_n: usize, block: Range<usize>, transformed: &mut [f32]) {
    let count = block.len();
    let zeros = vec![0f32; c_n];
    let mut rows: Vec<Vec<f32>> = vec![vec![0f32; c_n]; 36];
    let mut cols: Vec<Vec<f32>> = vec![vec![0f32; c_n]; 6];
    for (t, tile) in block.enumerate() {
        let (ty, tx) = (tile / map.tiles_x, tile % map.tiles_x);
        // The tile's rows, transformed along x...
        for r in 0..6 {
            let y = (ty * 4 + r).wrapping_sub(1);
            let pixel = |col: usize| {
                let xx = (tx * 4 + col).wrapping_sub(1);
                if y < map.h && xx < map.w { &x[(y * map.w + xx) * c_n..(y * map.w + xx + 1) * c_n] } else { &zeros[..] }
            };
            let mut dst: [&mut [f32]; 6] = rows_mut(&mut rows[r * 6..r * 6 + 6]);
            input_transform([pixel(0), pixel(1), pixel(2), pixel(3), pixel(4), pixel(5)], &mut dst);
        }
        // ...then along y, into position (i, j)'s matrix, row t.
        for j in 0..6 {
            let column = [0, 1, 2, 3, 4, 5].map(|r| &rows[r * 6 + j][..]);
            let mut dst: [&mut [f32]; 6] = rows_mut(&mut cols);
            input_transform(column, &mut dst);
            for (i, col) in cols.iter().enumerate() {
                let at = ((i * 6 + j) * count + t) * c_n;
                transformed[at..at + c_n].copy_from_slice(col);
            }
        }
    }
}

/// `N` mutable row slices of `N` buffers.
fn rows_mut<const N: usize>(buffers: &mut [Vec<f32>]) -> [&mut [f32]; N] {
    let mut iter = buffers.iter_mut();
    std::array::from_fn(|_| iter.next().expect("as many buffers as rows").as_mut_slice())
}

/// `dst[m, n] = lhs[m, k] * rhs[k, n]`, all row-major, on one thread (callers spread the work).
fn matmul(dst: &mut [f32], lhs: &[f32], rhs: &[f32], m: usize, k: usize, n: usize) {
    assert!(dst.len() == m * n && lhs.len() == m * k && rhs.len() == k * n, "matrix shapes");
    // SAFETY: the three slices hold exactly the m x n, m x k and k x n row-major matrices the
    // strides below describe (asserted above), and `dst` does not alias the others (&mut).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    /// The definition: ONNX Conv (cross-correlation), padding 1, then bias and ReLU.
    fn direct(x: &[f32], h: usize, w: usize, c_n: usize, weight: &[f32], bias: &[f32]) -> Vec<f32> {
        direct_linear(x, h, w, c_n, weight, bias).into_iter().map(|v| v.max(0.0)).collect()
    }

    /// ONNX Conv, padding 1, then bias, without the ReLU.
    fn direct_linear(x: &[f32], h: usize, w: usize, c_n: usize, weight: &[f32], bias: &[f32]) -> Vec<f32> {
        let k_n = bias.len();
        let mut out = vec![0f32; h * w * k_n];
        for y in 0..h {
            for xx in 0..w {
                for k in 0..k_n {
                    let mut acc = bias[k] as f64;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (sy, sx) = ((y + ky).wrapping_sub(1), (xx + kx).wrapping_sub(1));
                            if sy >= h || sx >= w {
                                continue;
                            }
                            for c in 0..c_n {
                                acc += (x[(sy * w + sx) * c_n + c] * weight[((k * c_n + c) * 3 + ky) * 3 + kx]) as f64;
                            }
                        }
                    }
                    out[(y * w + xx) * k_n + k] = acc as f32;
                }
            }
        }
        out
    }

    /// Largest difference from the direct convolution allowed, relative to the largest output:
    /// F(4x4, 3x3)'s transforms amplify float32 rounding (coefficients up to 8), measured 1.1e-5
    /// at 256 input channels; a wrong transform or tile is off by the order of 1.
    const TOLERANCE: f32 = 4e-5;

    fn random(n: usize, scale: f32, rng: &mut impl Rng) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-scale..scale)).collect()
    }

    /// Every size a VGG16 trunk meets, tiles cut by the border included (sides not a multiple of
    /// 4, down to 1 pixel), channel counts from 1 to wide, in one block or many.
    #[test]
    fn equals_the_direct_convolution() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (mut cut, mut kept) = (0, 0);
        for (h, w, c_n, k_n) in
            [(1, 1, 1, 1), (3, 5, 2, 3), (7, 7, 3, 8), (14, 14, 16, 24), (13, 30, 5, 64), (56, 56, 8, 16), (9, 4, 260, 7)]
        {
            let x = random(h * w * c_n, 100.0, &mut rng);
            let weight = random(k_n * c_n * 9, 0.1, &mut rng);
            let bias = random(k_n, 1.0, &mut rng);
            let expected = direct(&x, h, w, c_n, &weight, &bias);
            let conv = WinogradConv::new(c_n, k_n, &weight, &bias, true);
            let got = conv.forward(&x, h, w, &mut Scratch::default());
            assert_eq!(got.len(), expected.len());
            let scale = expected.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            cut += expected.iter().filter(|&&v| v == 0.0).count();
            kept += expected.iter().filter(|&&v| v > 0.0).count();
            for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                assert!((g - e).abs() <= TOLERANCE * scale, "{h}x{w}x{c_n}->{k_n} at {i}: {g} against {e} (scale {scale})");
            }
        }
        assert!(cut > 100 && kept > 100, "the ReLU cuts some outputs, not all: {cut} cut, {kept} kept");
    }

    /// Blocks of tiles give the same answer as one block: maps large enough to be cut in several,
    /// for a layer with few channels (L2-sized blocks) and one with many (deep blocks).
    #[test]
    fn blocks_of_tiles_cover_the_map_once() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let (h, w): (usize, usize) = (70, 66);
        let tiles = h.div_ceil(4) * w.div_ceil(4);
        assert!(DEEP_BLOCK_TILES < tiles, "the map is cut in several blocks, of either size");
        for (c_n, k_n) in [(64, 64), (256, 8)] {
            let x = random(h * w * c_n, 10.0, &mut rng);
            let weight = random(k_n * c_n * 9, 0.1, &mut rng);
            let bias = random(k_n, 1.0, &mut rng);
            let got = WinogradConv::new(c_n, k_n, &weight, &bias, true).forward(&x, h, w, &mut Scratch::default());
            let expected = direct(&x, h, w, c_n, &weight, &bias);
            let scale = expected.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            let worst = got.iter().zip(&expected).fold(0f32, |m, (g, e)| m.max((g - e).abs()));
            assert!(worst <= TOLERANCE * scale, "{c_n}->{k_n}: worst {worst} of {scale}");
        }
    }

    /// On a pool of threads, either way of sharing the work (blocks side by side on a wide map,
    /// the 36 products side by side on a deep one) gives the one-thread answer, and without the
    /// fused ReLU the negative outputs stay.
    #[test]
    fn on_several_threads_the_same_answer() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        for (h, w, c_n, k_n) in [(70, 66, 16, 24), (14, 14, 300, 20), (5, 9, 4, 4)] {
            let x = random(h * w * c_n, 10.0, &mut rng);
            let weight = random(k_n * c_n * 9, 0.1, &mut rng);
            let bias = random(k_n, 1.0, &mut rng);
            let conv = WinogradConv::new(c_n, k_n, &weight, &bias, false);
            let alone = conv.forward(&x, h, w, &mut Scratch::default());
            let mut shared = vec![0f32; alone.len()];
            pool.install(|| conv.forward_parallel_into(&x, h, w, &mut shared));
            assert_eq!(alone, shared, "{h}x{w}x{c_n}->{k_n}: the same sums in the same order");
            let expected = direct_linear(&x, h, w, c_n, &weight, &bias);
            let scale = expected.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            let worst = alone.iter().zip(&expected).fold(0f32, |m, (g, e)| m.max((g - e).abs()));
            assert!(worst <= TOLERANCE * scale, "{h}x{w}x{c_n}->{k_n}: worst {worst} of {scale}");
            assert!(alone.iter().filter(|v| **v < 0.0).count() > alone.len() / 4, "negative outputs kept");
        }
    }
}
