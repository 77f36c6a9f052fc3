//! WebP files built chunk by chunk, for the tests of the container check (`shared::webp`) and the
//! bad-input corpus: sizes and flags as a hostile file would declare them.

/// A RIFF chunk: its four-character code, its length, its payload, padded to an even length.
pub fn chunk(fourcc: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut c = fourcc.to_vec();
    c.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    c.extend_from_slice(payload);
    if payload.len() % 2 == 1 {
        c.push(0);
    }
    c
}

/// A WebP file of these chunks.
pub fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = chunks.concat();
    [b"RIFF".to_vec(), ((body.len() + 4) as u32).to_le_bytes().to_vec(), b"WEBP".to_vec(), body].concat()
}

/// An extended-format header: `flags` (0x02 animation, 0x08 EXIF) and the canvas size.
pub fn vp8x(flags: u8, width: u32, height: u32) -> Vec<u8> {
    chunk(b"VP8X", &[[flags, 0, 0, 0].as_slice(), &(width - 1).to_le_bytes()[..3], &(height - 1).to_le_bytes()[..3]].concat())
}

/// A lossless bitstream's header declaring `width` x `height` (no image data after it).
pub fn vp8l(width: u32, height: u32) -> Vec<u8> {
    let bits = (width - 1) | ((height - 1) << 14);
    chunk(b"VP8L", &[[0x2f].as_slice(), &bits.to_le_bytes(), &[0; 8]].concat())
}

/// A lossy key frame's header declaring `width` x `height` (no image data after it).
pub fn vp8(width: u16, height: u16) -> Vec<u8> {
    chunk(b"VP8 ", &[[0, 0, 0, 0x9d, 0x01, 0x2a].as_slice(), &width.to_le_bytes(), &height.to_le_bytes(), &[0; 6]].concat())
}
