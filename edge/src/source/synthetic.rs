//! A generated, moving test pattern: for tests and benchmarks without a camera.

use std::time::Instant;

use image::{DynamicImage, Rgb, RgbImage};

use super::{Event, Frame, FrameSource, Pacer};

pub struct Synthetic {
    width: u32,
    height: u32,
    number: u64,
    pacer: Pacer,
}

impl Synthetic {
    pub fn new(width: u32, height: u32, fps: Option<f32>) -> Self {
        Self { width, height, number: 0, pacer: Pacer::new(fps) }
    }
}

impl FrameSource for Synthetic {
    fn next(&mut self) -> anyhow::Result<Event> {
        self.pacer.wait();
        let started = Instant::now();
        let t = self.number as u32;
        let image = RgbImage::from_fn(self.width, self.height, |x, y| {
            Rgb([((x + 3 * t) % 256) as u8, ((y + 2 * t) % 256) as u8, (((x ^ y) + t) % 256) as u8])
        });
        self.number += 1;
        Ok(Event::Frame(Frame {
            number: self.number,
            captured_at: Instant::now(),
            timestamp_ms: crate::unix_ms(),
            image: DynamicImage::ImageRgb8(image),
            capture_ms: started.elapsed().as_secs_f32() * 1000.0,
        }))
    }

    fn is_live(&self) -> bool {
        self.pacer.interval.is_some()
    }

    fn describe(&self) -> String {
        format!("synthetic {}x{}", self.width, self.height)
    }
}
