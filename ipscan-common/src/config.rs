//! The CONFIG map value: thresholds, windows and switches, written by user space.

use crate::classify::{DETECTION_SLOTS, Detection};

/// Bits of [`DetectionConfig::flags`].
pub mod detection_flags {
    /// The detection runs.
    pub const ENABLED: u32 = 0x1;
}

/// Threshold and window of one detection.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetectionConfig {
    /// Distinct destination ports (scans) or packets (floods) that trigger the detection.
    pub threshold: u32,
    /// [`detection_flags`] bits.
    pub flags: u32,
    /// Inactivity window in nanoseconds: state lapses when no counted packet came for this long.
    pub window_ns: u64,
}
const _: () = assert!(core::mem::size_of::<DetectionConfig>() == 16);

impl DetectionConfig {
    pub const fn new(threshold: u32, window_secs: u64) -> Self {
        Self {
            threshold,
            flags: detection_flags::ENABLED,
            window_ns: window_secs * 1_000_000_000,
        }
    }

    pub const fn disabled() -> Self {
        Self {
            threshold: u32::MAX,
            flags: 0,
            window_ns: 0,
        }
    }

    pub fn enabled(&self) -> bool {
        self.flags & detection_flags::ENABLED != 0
    }
}

/// The single CONFIG map slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub detections: [DetectionConfig; DETECTION_SLOTS],
    /// Reserved for global switches; zero today.
    pub flags: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<Config>() == 16 * 16 + 8);

impl Config {
    pub fn detection(&self, d: Detection) -> &DetectionConfig {
        // DETECTION_SLOTS > every discriminant, checked by a test.
        &self.detections[d as usize]
    }

    pub fn detection_mut(&mut self, d: Detection) -> &mut DetectionConfig {
        &mut self.detections[d as usize]
    }
}

impl Default for Config {
    /// iplog 2.2.3's thresholds and windows.
    fn default() -> Self {
        let mut detections = [DetectionConfig::disabled(); DETECTION_SLOTS];
        detections[Detection::PortScan as usize] = DetectionConfig::new(15, 50);
        detections[Detection::SynScan as usize] = DetectionConfig::new(10, 50);
        detections[Detection::FinScan as usize] = DetectionConfig::new(10, 50);
        detections[Detection::NullScan as usize] = DetectionConfig::new(10, 50);
        detections[Detection::XmasScan as usize] = DetectionConfig::new(10, 50);
        detections[Detection::UdpScan as usize] = DetectionConfig::new(25, 50);
        detections[Detection::PingFlood as usize] = DetectionConfig::new(70, 60);
        detections[Detection::Smurf as usize] = DetectionConfig::new(90, 30);
        Self {
            detections,
            flags: 0,
            _pad: 0,
        }
    }
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for Config {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::DETECTIONS;

    #[test]
    fn defaults_are_iplogs() {
        let c = Config::default();
        assert_eq!(c.detection(Detection::PortScan).threshold, 15);
        assert_eq!(c.detection(Detection::SynScan).window_ns, 50_000_000_000);
        assert_eq!(c.detection(Detection::UdpScan).threshold, 25);
        assert_eq!(c.detection(Detection::PingFlood).window_ns, 60_000_000_000);
        assert!(DETECTIONS.iter().all(|d| (*d as usize) < DETECTION_SLOTS));
    }
}
