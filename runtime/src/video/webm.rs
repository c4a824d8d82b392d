//! VP9 (libvpx, yuv420p, BT.601 limited range) in a WebM container
//! (libwebm's muxer): the open format browsers play everywhere.
//!
//! libvpx is the system's (Debian: `libvpx-dev`, installed by
//! scripts/setup.sh), reached through `env-libvpx-sys`; the muxer is libwebm,
//! built from source by the `webm` crate.

use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_ulong};
use std::path::Path;
use std::ptr;

use openh264::formats::{RgbaSliceU8, YUVBuffer, YUVSource};
use vpx_sys::{
    vp8e_enc_control_id, vpx_codec_ctx_t, vpx_codec_cx_pkt_kind, vpx_codec_enc_cfg_t,
    vpx_codec_err_t, vpx_image_t, vpx_img_fmt, vpx_kf_mode, vpx_rc_mode,
};
use webm::mux::{Segment, Track, VideoCodecId, Writer};

use super::{Clip, VideoError};

fn enc(e: impl std::fmt::Display) -> VideoError {
    VideoError::Encode(e.to_string())
}

/// Quantiser (0-63) of the constant-quality mode: a clip to keep.
const CQ_LEVEL: c_int = 18;

/// A VP9 encoder for one clip.
struct Vp9 {
    ctx: vpx_codec_ctx_t,
}

impl Vp9 {
    fn check(&mut self, err: vpx_codec_err_t, what: &str) -> Result<(), VideoError> {
        if err == vpx_codec_err_t::VPX_CODEC_OK {
            return Ok(());
        }
        // SAFETY: the context was initialised; libvpx returns a static string.
        let detail = unsafe { std::ffi::CStr::from_ptr(vpx_sys::vpx_codec_error(&mut self.ctx)) };
        Err(VideoError::Encode(format!(
            "VP9 {what}: {}",
            detail.to_string_lossy()
        )))
    }

    fn new(width: u32, height: u32, fps: f64) -> Result<Vp9, VideoError> {
        // SAFETY: plain C structs that libvpx fills; every call is checked.
        unsafe {
            let iface = vpx_sys::vpx_codec_vp9_cx();
            let mut cfg: vpx_codec_enc_cfg_t = MaybeUninit::zeroed().assume_init();
            if vpx_sys::vpx_codec_enc_config_default(iface, &mut cfg, 0)
                != vpx_codec_err_t::VPX_CODEC_OK
            {
                return Err(enc("libvpx has no default VP9 configuration"));
            }
            cfg.g_w = width;
            cfg.g_h = height;
            // Frame i has pts i in a timebase of one frame.
            let (num, den) = frame_timebase(fps);
            cfg.g_timebase.num = num;
            cfg.g_timebase.den = den;
            cfg.g_threads = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
            cfg.g_lag_in_frames = 0;
            cfg.rc_end_usage = vpx_rc_mode::VPX_Q;
            cfg.rc_min_quantizer = 0;
            cfg.rc_max_quantizer = 63;
            cfg.kf_mode = vpx_kf_mode::VPX_KF_AUTO;
            cfg.kf_max_dist = 120;
            let mut ctx: vpx_codec_ctx_t = MaybeUninit::zeroed().assume_init();
            if vpx_sys::vpx_codec_enc_init_ver(
                &mut ctx,
                iface,
                &cfg,
                0,
                vpx_sys::VPX_ENCODER_ABI_VERSION as c_int,
            ) != vpx_codec_err_t::VPX_CODEC_OK
            {
                return Err(enc(format!(
                    "libvpx refused a {width}x{height} VP9 encoder"
                )));
            }
            let mut vp9 = Vp9 { ctx };
            for (id, value) in [
                (vp8e_enc_control_id::VP8E_SET_CQ_LEVEL, CQ_LEVEL),
                (vp8e_enc_control_id::VP8E_SET_CPUUSED, 4),
            ] {
                let err = vpx_sys::vpx_codec_control_(&mut vp9.ctx, id as c_int, value);
                vp9.check(err, "settings")?;
            }
            Ok(vp9)
        }
    }

    /// Encodes frame `pts` (None flushes) and hands each packet to `out`.
    fn encode(
        &mut self,
        frame: Option<(&YUVBuffer, i64)>,
        out: &mut dyn FnMut(&[u8], i64, bool),
    ) -> Result<(), VideoError> {
        // SAFETY: the image wraps `i420`, which outlives the encode call;
        // packets are copied out before the next libvpx call.
        unsafe {
            let mut i420 = Vec::new();
            let mut image: vpx_image_t = MaybeUninit::zeroed().assume_init();
            let (img, pts) = match frame {
                Some((yuv, pts)) => {
                    let (w, h) = yuv.dimensions();
                    let (sy, su, sv) = yuv.strides();
                    i420.reserve(w * h * 3 / 2);
                    for row in yuv.y().chunks(sy).take(h) {
                        i420.extend_from_slice(&row[..w]);
                    }
                    for (plane, stride) in [(yuv.u(), su), (yuv.v(), sv)] {
                        for row in plane.chunks(stride).take(h / 2) {
                            i420.extend_from_slice(&row[..w / 2]);
                        }
                    }
                    if vpx_sys::vpx_img_wrap(
                        &mut image,
                        vpx_img_fmt::VPX_IMG_FMT_I420,
                        w as u32,
                        h as u32,
                        1,
                        i420.as_mut_ptr(),
                    )
                    .is_null()
                    {
                        return Err(enc("libvpx could not wrap the frame"));
                    }
                    (&image as *const vpx_image_t, pts)
                }
                None => (ptr::null(), -1),
            };
            let err = vpx_sys::vpx_codec_encode(
                &mut self.ctx,
                img,
                pts,
                1,
                0,
                vpx_sys::VPX_DL_GOOD_QUALITY as c_ulong,
            );
            self.check(err, "encode")?;
            let mut iter = ptr::null();
            loop {
                let pkt = vpx_sys::vpx_codec_get_cx_data(&mut self.ctx, &mut iter);
                if pkt.is_null() {
                    break;
                }
                if (*pkt).kind != vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                    continue;
                }
                let f = (*pkt).data.frame;
                let data = std::slice::from_raw_parts(f.buf as *const u8, f.sz as usize);
                out(data, f.pts, f.flags & vpx_sys::VPX_FRAME_IS_KEY != 0);
            }
        }
        Ok(())
    }
}

impl Drop for Vp9 {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe {
            vpx_sys::vpx_codec_destroy(&mut self.ctx);
        }
    }
}

/// One frame as a rational timebase: 1/fps, exact to a thousandth.
fn frame_timebase(fps: f64) -> (c_int, c_int) {
    (1000, (fps * 1000.0).round() as c_int)
}

/// Encodes `clip` as VP9 in WebM into the file at `path` (written beside
/// it, then renamed).
pub fn write_file(clip: &Clip, path: &Path) -> Result<(), VideoError> {
    clip.check()?;
    if clip.width % 2 != 0 || clip.height % 2 != 0 {
        return Err(VideoError::OddSize {
            width: clip.width,
            height: clip.height,
        });
    }
    let io = |e: std::io::Error| VideoError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let partial = path.with_extension("webm.partial");
    let file = std::fs::File::create(&partial).map_err(io)?;
    let mut segment =
        Segment::new(Writer::new(file)).ok_or_else(|| enc("libwebm could not start a segment"))?;
    let mut track = segment.add_video_track(clip.width, clip.height, None, VideoCodecId::VP9);
    let mut vp9 = Vp9::new(clip.width, clip.height, clip.fps)?;
    let ns_per_frame = 1e9 / clip.fps;
    let mut written = 0;
    let mut failed = false;
    {
        let mut add = |data: &[u8], pts: i64, key: bool| {
            failed |= !track.add_frame(data, (pts as f64 * ns_per_frame).round() as u64, key);
            written += 1;
        };
        let (w, h) = (clip.width as usize, clip.height as usize);
        for (i, frame) in clip.frames.iter().enumerate() {
            let yuv = YUVBuffer::from_rgba8_source(RgbaSliceU8::new(frame, (w, h)));
            vp9.encode(Some((&yuv, i as i64)), &mut add)?;
        }
        vp9.encode(None, &mut add)?;
    }
    if failed || written != clip.frames.len() {
        return Err(VideoError::Encode(format!(
            "VP9 gave {written} packets for {} frames",
            clip.frames.len()
        )));
    }
    let duration_ns = (clip.frames.len() as f64 * ns_per_frame).round() as u64;
    // libwebm's segment duration is in its timecode scale, 1 ms by default.
    if !segment.finalize(Some(duration_ns / 1_000_000)) {
        return Err(enc("libwebm could not finish the file"));
    }
    std::fs::rename(&partial, path).map_err(io)
}
