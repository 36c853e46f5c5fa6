//! Long runs: frame accounting and resident memory over 10,000 frames, and 100 start/stop
//! cycles. The RSS figures are printed (`cargo test --test soak -- --nocapture`).

mod common;

use common::*;
use gst::prelude::*;
use gstrsstyle::frame::PixelFormat;

/// Resident set size of this process in KiB.
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

#[test]
fn ten_thousand_frames_in_equal_out_with_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let model = invert(dir.path(), "0..255");
    let (w, h) = (64, 48);
    let mut harness = harness(
        &[
            ("model", model.display().to_string().to_value()),
            ("batch-size", 4u32.to_value()),
        ],
        PixelFormat::Rgb,
        w,
        h,
    );
    let frame = pack(
        &pattern(w, h),
        w,
        h,
        PixelFormat::Rgb,
        default_stride(PixelFormat::Rgb, w),
        0,
    );
    let mut rss_after_warmup = 0;
    let mut out = 0u64;
    for i in 0..10_000u64 {
        let mut buf = gst::Buffer::from_slice(frame.clone());
        buf.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(i * 40));
        harness.push(buf).unwrap();
        while let Some(b) = harness.try_pull() {
            assert_eq!(b.pts(), Some(gst::ClockTime::from_mseconds(out * 40)));
            out += 1;
        }
        if i == 999 {
            rss_after_warmup = rss_kib();
        }
    }
    harness.push_event(gst::event::Eos::new());
    while out < 10_000 {
        let b = harness.pull().unwrap();
        assert_eq!(b.pts(), Some(gst::ClockTime::from_mseconds(out * 40)));
        out += 1;
    }
    let rss_end = rss_kib();
    println!("10,000 frames: RSS {rss_after_warmup} KiB after 1,000, {rss_end} KiB after 10,000");
    let stats = harness
        .element()
        .unwrap()
        .property::<gst::Structure>("stats");
    assert_eq!(stats.get::<u64>("frames-in").unwrap(), 10_000);
    assert_eq!(stats.get::<u64>("frames-out").unwrap(), 10_000);
    assert!(
        rss_end < rss_after_warmup + 8 * 1024,
        "RSS grew from {rss_after_warmup} to {rss_end} KiB"
    );
}

#[test]
fn a_hundred_start_stop_cycles() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let model = invert(dir.path(), "0..255");
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=3 ! video/x-raw,format=RGB,width=64,height=48 ! rsstyle model={} ! fakesink",
        model.display()
    ))
    .unwrap();
    let bus = pipeline.bus().unwrap();
    let mut rss_at_10 = 0;
    for cycle in 0..100 {
        pipeline.set_state(gst::State::Playing).unwrap();
        let msg = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(10),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
            .expect("EOS");
        assert_eq!(msg.type_(), gst::MessageType::Eos, "cycle {cycle}: {msg:?}");
        pipeline.set_state(gst::State::Null).unwrap();
        if cycle == 9 {
            rss_at_10 = rss_kib();
        }
    }
    let rss_end = rss_kib();
    println!("100 NULL→PLAYING→NULL cycles: RSS {rss_at_10} KiB after 10, {rss_end} KiB after 100");
    assert!(
        rss_end < rss_at_10 + 8 * 1024,
        "RSS grew from {rss_at_10} to {rss_end} KiB"
    );
}
