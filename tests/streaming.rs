//! Streaming behaviour: batching, order, events, flush, caps changes, latency, QoS, live
//! controls and shared engines, driven through gst_check::Harness with a test engine.

mod common;

use std::time::Duration;

use common::*;
use gst::prelude::*;

const W: usize = 32;
const H: usize = 24;

fn caps(width: usize, height: usize) -> String {
    format!("video/x-raw,format=RGB,width={width},height={height},framerate=25/1")
}

fn inverted(pixels: &[[u8; 3]]) -> Vec<[u8; 3]> {
    pixels.iter().map(|p| p.map(|v| 255 - v)).collect()
}

fn stats(h: &gst_check::Harness) -> gst::Structure {
    h.element().unwrap().property::<gst::Structure>("stats")
}

fn stat_u64(s: &gst::Structure, name: &str) -> u64 {
    s.get::<u64>(name).unwrap()
}

/// Frame `i` of a test sequence: a distinct uniform grey level.
fn frame(i: usize) -> Vec<[u8; 3]> {
    vec![[(i * 20 + 10) as u8; 3]; W * H]
}

fn pull_pts_ms(h: &mut gst_check::Harness) -> (u64, gst::Buffer) {
    let b = h.pull().unwrap();
    (b.pts().unwrap().mseconds(), b)
}

#[test]
fn ten_frames_in_batches_of_four_then_eos() {
    let dir = tempfile::tempdir().unwrap();
    let control = test_engine("batches", &invert(dir.path(), "0..255"), 0);
    let (mut h, _bus) = start_rgb(
        &[
            ("model", "test:batches".to_value()),
            ("batch-size", 4u32.to_value()),
            ("batch-timeout", 10_000u32.to_value()),
        ],
        W,
        H,
    );
    for i in 0..10 {
        h.push(rgb_buffer(&frame(i), W, H, i as u64 * 40)).unwrap();
    }
    assert!(h.push_event(gst::event::Eos::new()));
    for i in 0..10 {
        let (pts, b) = pull_pts_ms(&mut h);
        assert_eq!(pts, i as u64 * 40);
        assert_eq!(b.duration(), Some(gst::ClockTime::from_mseconds(40)));
        assert_eq!(rgb_pixels(&b, W, H), inverted(&frame(i)), "frame {i}");
    }
    // EOS comes after the last frame.
    loop {
        let e = h.pull_event().unwrap();
        if e.type_() == gst::EventType::Eos {
            break;
        }
    }
    assert_eq!(control.batch_sizes(), [4, 4, 2]);
    let s = stats(&h);
    assert_eq!(
        (stat_u64(&s, "frames-in"), stat_u64(&s, "frames-out")),
        (10, 10)
    );
    assert_eq!(stat_u64(&s, "batches"), 3);
}

#[test]
fn flush_drops_everything_queued_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let control = test_engine("flush", &invert(dir.path(), "0..255"), 150);
    let (mut h, _bus) = start_rgb(&[("model", "test:flush".to_value())], W, H);
    for i in 0..4 {
        h.push(rgb_buffer(&frame(i), W, H, i as u64 * 40)).unwrap();
    }
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
        gst::ClockTime,
    >::new()));
    control
        .delay_ms
        .store(0, std::sync::atomic::Ordering::SeqCst);
    for i in 0..2 {
        h.push(rgb_buffer(&frame(5 + i), W, H, 1000 + i as u64 * 40))
            .unwrap();
    }
    for i in 0..2 {
        let (pts, b) = pull_pts_ms(&mut h);
        assert_eq!(pts, 1000 + i as u64 * 40);
        assert_eq!(rgb_pixels(&b, W, H), inverted(&frame(5 + i)));
    }
    assert_eq!(
        h.buffers_received(),
        2,
        "a frame from before the flush came out after it"
    );
    // At most the frame already in inference ran; the other three never reached the engine.
    assert!(
        control.batch_sizes().len() <= 3,
        "{:?}",
        control.batch_sizes()
    );
}

#[test]
fn caps_change_drains_then_continues_at_the_new_size() {
    let dir = tempfile::tempdir().unwrap();
    let _control = test_engine("caps", &invert(dir.path(), "0..255"), 0);
    let (mut h, _bus) = start_rgb(
        &[
            ("model", "test:caps".to_value()),
            ("batch-size", 4u32.to_value()),
            ("batch-timeout", 10_000u32.to_value()),
        ],
        320,
        240,
    );
    let small = pattern(320, 240);
    let large = pattern(640, 480);
    for i in 0..2 {
        h.push(rgb_buffer(&small, 320, 240, i * 40)).unwrap();
    }
    h.set_src_caps_str(&caps(640, 480));
    for i in 2..4 {
        h.push(rgb_buffer(&large, 640, 480, i * 40)).unwrap();
    }
    h.push_event(gst::event::Eos::new());
    for _ in 0..2 {
        assert_eq!(rgb_pixels(&h.pull().unwrap(), 320, 240), inverted(&small));
    }
    for _ in 0..2 {
        assert_eq!(rgb_pixels(&h.pull().unwrap(), 640, 480), inverted(&large));
    }
    // The caps event reached downstream between the two sizes.
    let mut widths = Vec::new();
    while let Some(e) = h.try_pull_event() {
        if let gst::EventView::Caps(c) = e.view() {
            widths.push(c.caps().structure(0).unwrap().get::<i32>("width").unwrap());
        }
    }
    assert_eq!(widths, [320, 640]);
}

#[test]
fn a_partial_batch_goes_out_after_the_batch_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let control = test_engine("timeout", &invert(dir.path(), "0..255"), 0);
    let (mut h, _bus) = start_rgb(
        &[
            ("model", "test:timeout".to_value()),
            ("batch-size", 8u32.to_value()),
            ("batch-timeout", 30u32.to_value()),
        ],
        W,
        H,
    );
    let started = std::time::Instant::now();
    h.push(rgb_buffer(&frame(1), W, H, 0)).unwrap();
    let b = h.pull().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(30));
    assert_eq!(rgb_pixels(&b, W, H), inverted(&frame(1)));
    assert_eq!(control.batch_sizes(), [1]);
}

#[test]
fn latency_query_adds_batch_timeout_and_processing() {
    let dir = tempfile::tempdir().unwrap();
    let _control = test_engine("latency-fixed", &invert(dir.path(), "0..255"), 0);
    let (mut h, _bus) = start_rgb(
        &[
            ("model", "test:latency-fixed".to_value()),
            ("batch-timeout", 10u32.to_value()),
            ("latency", 30i64.to_value()),
        ],
        W,
        H,
    );
    h.set_upstream_latency(gst::ClockTime::from_mseconds(5));
    assert_eq!(h.query_latency(), Some(gst::ClockTime::from_mseconds(45)));
}

#[test]
fn measured_latency_above_the_reported_one_posts_a_latency_message() {
    let dir = tempfile::tempdir().unwrap();
    let _control = test_engine("latency-measured", &invert(dir.path(), "0..255"), 60);
    let (mut h, bus) = start_rgb(&[("model", "test:latency-measured".to_value())], W, H);
    h.set_upstream_latency(gst::ClockTime::ZERO);
    assert_eq!(h.query_latency(), Some(gst::ClockTime::ZERO));
    h.push(rgb_buffer(&frame(1), W, H, 0)).unwrap();
    h.pull().unwrap();
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(5),
        &[gst::MessageType::Latency],
    );
    assert!(msg.is_some(), "no latency message");
    let latency = h.query_latency().unwrap();
    assert!(latency >= gst::ClockTime::from_mseconds(60), "{latency}");
}

#[test]
fn qos_drops_frames_downstream_says_are_late() {
    let dir = tempfile::tempdir().unwrap();
    let control = test_engine("qos", &invert(dir.path(), "0..255"), 0);
    let (mut h, bus) = start_rgb(&[("model", "test:qos".to_value())], W, H);
    // Downstream reports that everything before 500 ms running time is too late.
    let qos = gst::event::Qos::new(
        gst::QOSType::Underflow,
        0.8,
        100_000_000,
        gst::ClockTime::from_mseconds(400),
    );
    assert!(h.push_upstream_event(qos));
    for i in 0..10u64 {
        h.push(rgb_buffer(&frame(i as usize), W, H, i * 100))
            .unwrap();
    }
    h.push_event(gst::event::Eos::new());
    let out: Vec<u64> = (0..5)
        .map(|_| h.pull().unwrap().pts().unwrap().mseconds())
        .collect();
    assert_eq!(out, [500, 600, 700, 800, 900]);
    assert_eq!(
        control.batch_sizes().len(),
        5,
        "dropped frames must not reach the engine"
    );
    let s = stats(&h);
    assert_eq!(stat_u64(&s, "dropped-qos"), 5);
    let qos_messages = std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Qos])).count();
    assert_eq!(qos_messages, 5);
}

#[test]
fn qos_off_keeps_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let _control = test_engine("qos-off", &invert(dir.path(), "0..255"), 0);
    let (mut h, _bus) = start_rgb(
        &[
            ("model", "test:qos-off".to_value()),
            ("qos", false.to_value()),
        ],
        W,
        H,
    );
    let qos = gst::event::Qos::new(
        gst::QOSType::Underflow,
        0.8,
        0,
        gst::ClockTime::from_mseconds(1000),
    );
    h.push_upstream_event(qos);
    for i in 0..3u64 {
        h.push(rgb_buffer(&frame(1), W, H, i * 100)).unwrap();
    }
    for _ in 0..3 {
        h.pull().unwrap();
    }
}

/// Waits for an element message named `name` or a warning on `bus`, returning its text.
fn wait_for(bus: &gst::Bus, name: &str) -> Result<String, String> {
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[gst::MessageType::Element, gst::MessageType::Warning],
        )
        .expect("a message");
    match msg.view() {
        gst::MessageView::Element(e) if e.structure().is_some_and(|s| s.name() == name) => {
            Ok(e.structure().unwrap().get::<String>("model").unwrap())
        }
        gst::MessageView::Warning(w) => Err(w.error().message().to_string()),
        _ => Err(format!("unexpected {msg:?}")),
    }
}

#[test]
fn model_switch_while_playing() {
    let dir = tempfile::tempdir().unwrap();
    let first = identity(dir.path());
    let second = invert(dir.path(), "0..255");
    let (mut h, bus) = start_rgb(&[("model", first.display().to_string().to_value())], W, H);
    h.push(rgb_buffer(&frame(1), W, H, 0)).unwrap();
    assert_eq!(rgb_pixels(&h.pull().unwrap(), W, H), frame(1));

    h.element()
        .unwrap()
        .set_property("model", second.display().to_string());
    assert_eq!(
        wait_for(&bus, "rsstyle-model-loaded"),
        Ok(second.display().to_string())
    );
    h.push(rgb_buffer(&frame(2), W, H, 40)).unwrap();
    assert_eq!(rgb_pixels(&h.pull().unwrap(), W, H), inverted(&frame(2)));

    // A model that cannot load keeps the current one and warns.
    h.element()
        .unwrap()
        .set_property("model", "/nonexistent/next.onnx");
    assert_eq!(
        wait_for(&bus, "rsstyle-model-loaded"),
        Err(
            "could not switch to model '/nonexistent/next.onnx', keeping the current one: \
             model file '/nonexistent/next.onnx' does not exist"
                .to_string()
        )
    );
    h.push(rgb_buffer(&frame(3), W, H, 80)).unwrap();
    assert_eq!(rgb_pixels(&h.pull().unwrap(), W, H), inverted(&frame(3)));
}

#[test]
fn infer_every_third_frame_repeats_the_result_with_new_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let control = test_engine("every", &invert(dir.path(), "0..255"), 0);
    let (mut h, _bus) = start_rgb(
        &[
            ("model", "test:every".to_value()),
            ("infer-every", 3u32.to_value()),
        ],
        W,
        H,
    );
    for i in 0..7 {
        h.push(rgb_buffer(&frame(i), W, H, i as u64 * 40)).unwrap();
    }
    for i in 0..7 {
        let (pts, b) = pull_pts_ms(&mut h);
        assert_eq!(pts, i as u64 * 40);
        assert_eq!(b.duration(), Some(gst::ClockTime::from_mseconds(40)));
        assert_eq!(
            rgb_pixels(&b, W, H),
            inverted(&frame(i / 3 * 3)),
            "frame {i}"
        );
    }
    assert_eq!(control.batch_sizes().len(), 3);
}

#[test]
fn inference_scale_runs_the_network_at_half_size() {
    let dir = tempfile::tempdir().unwrap();
    let control = test_engine("scale", &invert(dir.path(), "0..255"), 0);
    let (mut h, _bus) = start_rgb(
        &[
            ("model", "test:scale".to_value()),
            ("inference-scale", 0.5f64.to_value()),
        ],
        320,
        240,
    );
    let uniform = vec![[30u8, 120, 210]; 320 * 240];
    h.push(rgb_buffer(&uniform, 320, 240, 0)).unwrap();
    assert_eq!(rgb_pixels(&h.pull().unwrap(), 320, 240), inverted(&uniform));
    assert_eq!(*control.shapes.lock().unwrap(), [[1, 3, 120, 160]]);
}

#[test]
fn preserve_color_transfers_luminance_only() {
    let dir = tempfile::tempdir().unwrap();
    let model = invert(dir.path(), "0..255");
    let (mut h, _bus) = start_rgb(
        &[
            ("model", model.display().to_string().to_value()),
            ("preserve-color", true.to_value()),
        ],
        W,
        H,
    );
    h.push(rgb_buffer(&vec![[200, 100, 50]; W * H], W, H, 0))
        .unwrap();
    // Styled (55, 155, 205) has luma 130.8, the input 124.2: every channel moves by +6.6.
    let out = rgb_pixels(&h.pull().unwrap(), W, H);
    assert!(out.iter().all(|p| *p == [207, 107, 57]), "{:?}", out[0]);
}

#[test]
fn style_and_strength_change_while_playing() {
    let dir = tempfile::tempdir().unwrap();
    let model = conditioned_offsets(dir.path());
    let (mut h, bus) = start_rgb(&[("model", model.display().to_string().to_value())], W, H);
    let input = vec![[100u8, 100, 100]; W * H];
    let element = h.element().unwrap();
    h.push(rgb_buffer(&input, W, H, 0)).unwrap();
    assert_eq!(rgb_pixels(&h.pull().unwrap(), W, H)[0], [110, 120, 130]);
    element.set_property("style", 1u32);
    h.push(rgb_buffer(&input, W, H, 40)).unwrap();
    assert_eq!(rgb_pixels(&h.pull().unwrap(), W, H)[0], [60, 100, 140]);
    element.set_property("strength", 0.5f64);
    h.push(rgb_buffer(&input, W, H, 80)).unwrap();
    assert_eq!(rgb_pixels(&h.pull().unwrap(), W, H)[0], [80, 100, 120]);
    // Out of range: refused with a warning, the current style kept.
    element.set_property("style", 7u32);
    assert_eq!(element.property::<u32>("style"), 1);
    let warning = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(1),
        &[gst::MessageType::Warning],
    );
    assert!(warning.is_some());
}

#[test]
fn two_streams_on_one_model_share_batches() {
    let dir = tempfile::tempdir().unwrap();
    let model = invert(dir.path(), "0..255");
    let props = [
        ("model", model.display().to_string().to_value()),
        ("batch-size", 2u32.to_value()),
        ("batch-timeout", 10_000u32.to_value()),
    ];
    let (mut a, _) = start_rgb(&props, W, H);
    let (mut b, _) = start_rgb(&props, W, H);
    a.push(rgb_buffer(&frame(1), W, H, 0)).unwrap();
    b.push(rgb_buffer(&frame(2), W, H, 0)).unwrap();
    assert_eq!(rgb_pixels(&a.pull().unwrap(), W, H), inverted(&frame(1)));
    assert_eq!(rgb_pixels(&b.pull().unwrap(), W, H), inverted(&frame(2)));
    for h in [&a, &b] {
        let s = stats(h);
        assert_eq!(stat_u64(&s, "batches"), 1);
        assert_eq!(stat_u64(&s, "last-batch"), 2);
    }
}

#[test]
fn leaky_queue_drops_instead_of_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let control = test_engine("leaky", &invert(dir.path(), "0..255"), 0);
    let (mut h, _bus) = start_rgb(
        &[
            ("model", "test:leaky".to_value()),
            ("leaky", true.to_value()),
            ("max-queued", 2u32.to_value()),
        ],
        W,
        H,
    );
    // One frame through first, so that the stream-start, caps and segment events are no longer
    // queued when the burst comes.
    h.push(rgb_buffer(&frame(1), W, H, 0)).unwrap();
    h.pull().unwrap();
    control
        .delay_ms
        .store(1000, std::sync::atomic::Ordering::SeqCst);
    let started = std::time::Instant::now();
    for i in 1..=10u64 {
        h.push(rgb_buffer(&frame(1), W, H, i * 40)).unwrap();
    }
    // Ten pushes against a 1 s engine return at once (blocking, they would take 8 s).
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    let s = stats(&h);
    let dropped = stat_u64(&s, "dropped-leaky");
    // max-queued=2: one frame in inference and one waiting are kept, the rest dropped.
    assert!((8..=9).contains(&dropped), "dropped {dropped}");
    h.push_event(gst::event::Eos::new());
    let out = (0..10 - dropped).map(|_| h.pull().unwrap()).count() as u64;
    assert_eq!(out + dropped, 10);
}

#[test]
fn a_slow_engine_on_a_live_source_drops_late_frames() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let _control = test_engine("live-slow", &invert(dir.path(), "0..255"), 100);
    let pipeline = gst::parse::launch(
        "videotestsrc is-live=true num-buffers=30 ! video/x-raw,format=RGB,width=32,height=24,framerate=30/1 \
         ! rsstyle name=style model=test:live-slow ! fakesink sync=true qos=true",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS");
    assert_eq!(msg.type_(), gst::MessageType::Eos);
    let s = pipeline
        .by_name("style")
        .unwrap()
        .property::<gst::Structure>("stats");
    pipeline.set_state(gst::State::Null).unwrap();
    let (out, dropped) = (stat_u64(&s, "frames-out"), stat_u64(&s, "dropped-qos"));
    assert_eq!(stat_u64(&s, "frames-in"), 30);
    assert_eq!(out + dropped, 30);
    assert!(
        dropped > 0,
        "a 100 ms engine on a 30 fps live source dropped nothing"
    );
}

#[test]
fn serialized_events_keep_their_place_between_frames() {
    let dir = tempfile::tempdir().unwrap();
    // A slow engine keeps frames in flight while the events behind them arrive.
    let _control = test_engine("events", &invert(dir.path(), "0..255"), 50);
    let (mut h, _bus) = start_rgb(&[("model", "test:events".to_value())], W, H);
    let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    {
        let seen = seen.clone();
        h.element().unwrap().static_pad("src").unwrap().add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| {
                let entry = match &info.data {
                    Some(gst::PadProbeData::Buffer(b)) => format!(
                        "buffer {}{}",
                        b.pts().unwrap().mseconds(),
                        if b.flags().contains(gst::BufferFlags::DISCONT) {
                            " discont"
                        } else {
                            ""
                        }
                    ),
                    Some(gst::PadProbeData::Event(e)) => match e.view() {
                        gst::EventView::CustomDownstream(c) => {
                            format!("custom {}", c.structure().unwrap().name())
                        }
                        _ => format!("{:?}", e.type_()),
                    },
                    _ => String::new(),
                };
                seen.lock().unwrap().push(entry);
                gst::PadProbeReturn::Ok
            },
        );
    }
    h.push(rgb_buffer(&frame(0), W, H, 0)).unwrap();
    let custom = gst::event::CustomDownstream::new(gst::Structure::new_empty("marker"));
    assert!(h.push_event(custom));
    let mut second = rgb_buffer(&frame(1), W, H, 40);
    second
        .get_mut()
        .unwrap()
        .set_flags(gst::BufferFlags::DISCONT);
    h.push(second).unwrap();
    assert!(h.push_event(gst::event::Gap::builder(gst::ClockTime::from_mseconds(80)).build()));
    h.push(rgb_buffer(&frame(2), W, H, 120)).unwrap();
    assert!(h.push_event(gst::event::Eos::new()));
    for _ in 0..3 {
        h.pull().unwrap();
    }
    while h.pull_event().unwrap().type_() != gst::EventType::Eos {}
    let seen = seen.lock().unwrap();
    let from_first: Vec<&str> = seen
        .iter()
        .map(String::as_str)
        .skip_while(|s| *s != "buffer 0")
        .collect();
    assert_eq!(
        from_first,
        [
            "buffer 0",
            "custom marker",
            "buffer 40 discont",
            "Gap",
            "buffer 120",
            "Eos"
        ]
    );
}

#[test]
fn a_full_queue_blocks_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let control = test_engine("blocking", &invert(dir.path(), "0..255"), 1000);
    let (h, _bus) = start_rgb(
        &[
            ("model", "test:blocking".to_value()),
            ("max-queued", 2u32.to_value()),
        ],
        W,
        H,
    );
    let pushed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = std::sync::Arc::new(std::sync::Mutex::new(h));
    let sink = h
        .lock()
        .unwrap()
        .element()
        .unwrap()
        .static_pad("sink")
        .unwrap();
    let pusher = {
        let pushed = pushed.clone();
        std::thread::spawn(move || {
            for i in 0..6u64 {
                let _ = sink.chain(rgb_buffer(&frame(1), W, H, i * 40));
                pushed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // One frame in inference (1 s), two queued: the fourth push waits.
    let done = pushed.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        done <= 3,
        "{done} pushes returned while the engine was busy"
    );
    control
        .delay_ms
        .store(0, std::sync::atomic::Ordering::SeqCst);
    pusher.join().unwrap();
    assert_eq!(pushed.load(std::sync::atomic::Ordering::SeqCst), 6);
    let mut h = h.lock().unwrap();
    for _ in 0..6 {
        h.pull().unwrap();
    }
}

#[test]
fn an_engine_panic_is_an_element_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let control = test_engine("panic", &invert(dir.path(), "0..255"), 0);
    let (mut h, bus) = start_rgb(&[("model", "test:panic".to_value())], W, H);
    h.push(rgb_buffer(&frame(1), W, H, 0)).unwrap();
    h.pull().unwrap();
    control
        .panic
        .store(true, std::sync::atomic::Ordering::SeqCst);
    h.push(rgb_buffer(&frame(2), W, H, 40)).unwrap();
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error])
        .expect("an error message");
    let gst::MessageView::Error(e) = msg.view() else {
        unreachable!()
    };
    assert_eq!(
        e.error().message(),
        "inference failed: the engine panicked: test engine told to panic"
    );
    // The stream stops with an error flow instead of hanging.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        h.push(rgb_buffer(&frame(3), W, H, 80)),
        Err(gst::FlowError::Error)
    );
}

#[test]
fn stats_split_a_frames_time_into_inference_and_overhead() {
    let dir = tempfile::tempdir().unwrap();
    let _control = test_engine("overhead", &invert(dir.path(), "0..255"), 30);
    let (mut h, _bus) = start_rgb(&[("model", "test:overhead".to_value())], W, H);
    let s = stats(&h);
    assert_eq!(s.get::<f64>("frame-ms-p50").unwrap(), 0.0, "no frame yet");
    for i in 0..3 {
        h.push(rgb_buffer(&frame(i), W, H, i as u64 * 40)).unwrap();
        h.pull().unwrap();
    }
    let s = stats(&h);
    let (frame_ms, overhead_ms) = (
        s.get::<f64>("frame-ms-p50").unwrap(),
        s.get::<f64>("overhead-ms-p50").unwrap(),
    );
    let inference_ms = s.get::<f64>("inference-ms-p50").unwrap();
    // The test engine sleeps 30 ms in inference; the overhead is the rest of the frame's time.
    assert!(inference_ms >= 30.0, "{s}");
    assert!(frame_ms >= inference_ms, "{s}");
    assert!(overhead_ms > 0.0 && overhead_ms <= frame_ms - 30.0, "{s}");
}

#[test]
fn a_fast_upstream_fills_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let control = test_engine("fill", &invert(dir.path(), "0..255"), 100);
    let (mut h, _bus) = start_rgb(
        &[
            ("model", "test:fill".to_value()),
            ("batch-size", 4u32.to_value()),
        ],
        W,
        H,
    );
    // Downstream takes 5 ms a frame, so a finished batch leaves the element one frame at a
    // time, as it does into a real sink.
    h.element()
        .unwrap()
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, |_, _| {
            std::thread::sleep(Duration::from_millis(5));
            gst::PadProbeReturn::Ok
        });
    let sink = h.element().unwrap().static_pad("sink").unwrap();
    // Upstream as fast as the element takes frames; batch-timeout 0 takes what is waiting.
    let pusher = std::thread::spawn(move || {
        for i in 0..14u64 {
            sink.chain(rgb_buffer(&frame(i as usize % 10), W, H, i * 40))
                .unwrap();
        }
    });
    pusher.join().unwrap();
    for i in 0..14 {
        let (pts, _) = pull_pts_ms(&mut h);
        assert_eq!(pts, i * 40);
    }
    // The first batch takes what has arrived; while a batch runs, the next one fills (the
    // element holds two batches), so every batch but the first and the last is whole.
    let sizes = control.batch_sizes();
    assert_eq!(sizes.iter().sum::<usize>(), 14);
    assert!(sizes.len() >= 3, "{sizes:?}");
    assert!(
        sizes[1..sizes.len() - 1].iter().all(|&n| n == 4),
        "{sizes:?}"
    );
}

#[test]
fn style_weights_change_while_playing_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = conditioned_offsets(dir.path());
    let (mut h, bus) = start_rgb(&[("model", model.display().to_string().to_value())], W, H);
    let input = vec![[100u8, 100, 100]; W * H];
    let element = h.element().unwrap();
    let mut pts = 0;
    let mut push_pull = |h: &mut gst_check::Harness| {
        h.push(rgb_buffer(&input, W, H, pts)).unwrap();
        pts += 40;
        rgb_pixels(&h.pull().unwrap(), W, H)[0]
    };
    // Style 0 (warm): +10, +20, +30.
    assert_eq!(push_pull(&mut h), [110, 120, 130]);
    element.set_property("style-weights", "cross:1,blue:3");
    // A quarter of (−40, 0, 40) and three quarters of (5, −5, 100): 100 − 6.25, 100 − 3.75,
    // 100 + 85.
    assert_eq!(push_pull(&mut h), [94, 96, 185]);
    // Unknown label, wrong count, negative weight, all zero: each refused with a warning
    // naming the problem; the mix stays.
    for (bad, says) in [
        (
            "sepia:1",
            "unknown style 'sepia': the model's styles are warm, cross, blue",
        ),
        ("1,2", "2 style weights for a model with 3 styles"),
        ("warm:-1", "style weight '-1' is not a number ≥ 0"),
        ("0,0,0", "style weights are all 0"),
    ] {
        element.set_property("style-weights", bad);
        let msg = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(1),
                &[gst::MessageType::Warning],
            )
            .expect("a warning");
        let gst::MessageView::Warning(w) = msg.view() else {
            unreachable!()
        };
        assert!(w.error().to_string().contains(says), "{bad}: {}", w.error());
        assert_eq!(push_pull(&mut h), [94, 96, 185], "{bad}");
    }
    assert_eq!(
        element.property::<String>("style-weights"),
        "cross:1,blue:3"
    );
    // Empty: back to the `style` property.
    element.set_property("style-weights", "");
    element.set_property("style", 2u32);
    assert_eq!(push_pull(&mut h), [105, 95, 200]);
}
