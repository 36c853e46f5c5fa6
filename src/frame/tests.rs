use super::geometry::{bilinear_tap, reflect};
use super::*;
use crate::model::SizeRule;

fn frame(data: &[u8], width: usize, height: usize, format: PixelFormat) -> FrameRef<'_> {
    FrameRef {
        data,
        width,
        height,
        stride: width * format.bytes_per_pixel(),
        format,
    }
}

fn frame_mut(data: &mut [u8], width: usize, height: usize, format: PixelFormat) -> FrameMut<'_> {
    FrameMut {
        data,
        width,
        height,
        stride: width * format.bytes_per_pixel(),
        format,
    }
}

const NCHW_RGB_BYTE: TensorFormat = TensorFormat {
    layout: Layout::Nchw,
    channel_order: ChannelOrder::Rgb,
    range: ValueRange::Byte,
};

#[test]
fn reflect_mirrors_without_repeating_the_edge() {
    let got: Vec<usize> = (0..9).map(|i| reflect(i, 4)).collect();
    assert_eq!(got, [0, 1, 2, 3, 2, 1, 0, 1, 2]);
    assert_eq!(reflect(5, 1), 0);
    assert_eq!(reflect(3, 2), 1);
}

#[test]
fn geometry_pads_to_the_multiple_or_resizes_to_the_fixed_size() {
    let g = Geometry::new(33, 17, SizeRule::Multiple(8));
    assert_eq!(
        (g.tensor_width, g.tensor_height, g.resample),
        (40, 24, Resample::Pad)
    );
    let g = Geometry::new(32, 16, SizeRule::Multiple(8));
    assert_eq!((g.tensor_width, g.tensor_height), (32, 16));
    let g = Geometry::new(
        640,
        480,
        SizeRule::Fixed {
            width: 224,
            height: 224,
        },
    );
    assert_eq!(
        (g.tensor_width, g.tensor_height, g.resample),
        (224, 224, Resample::Bilinear)
    );
    let g = Geometry::new(
        224,
        224,
        SizeRule::Fixed {
            width: 224,
            height: 224,
        },
    );
    assert_eq!(g.resample, Resample::Pad);
}

#[test]
fn bilinear_taps_align_pixel_centres() {
    // Halving: destination pixel 0 sits between source pixels 0 and 1.
    assert_eq!(bilinear_tap(0, 2, 4), (0, 1, 0.5));
    assert_eq!(bilinear_tap(1, 2, 4), (2, 3, 0.5));
    // Doubling: the first destination pixel clamps to the edge.
    assert_eq!(bilinear_tap(0, 8, 4), (0, 1, 0.0));
    assert_eq!(bilinear_tap(7, 8, 4), (3, 3, 0.25));
}

#[test]
fn nchw_tensor_holds_planes_in_model_channel_order() {
    // 2×1 BGRx frame: pixel 0 = (R 10, G 20, B 30), pixel 1 = (R 40, G 50, B 60).
    let data = [30, 20, 10, 0, 60, 50, 40, 0];
    let f = frame(&data, 2, 1, PixelFormat::Bgrx);
    let g = Geometry::new(2, 1, SizeRule::Multiple(1));
    let mut t = vec![0.0; 6];
    frame_to_tensor(&f, &g, &NCHW_RGB_BYTE, &mut t);
    assert_eq!(t, [10.0, 40.0, 20.0, 50.0, 30.0, 60.0]);
    let bgr = TensorFormat {
        channel_order: ChannelOrder::Bgr,
        ..NCHW_RGB_BYTE
    };
    frame_to_tensor(&f, &g, &bgr, &mut t);
    assert_eq!(t, [30.0, 60.0, 20.0, 50.0, 10.0, 40.0]);
}

#[test]
fn nhwc_tensor_interleaves_and_maps_the_value_range() {
    let data = [0, 255, 51, 102, 153, 204];
    let f = frame(&data, 2, 1, PixelFormat::Rgb);
    let g = Geometry::new(2, 1, SizeRule::Multiple(1));
    let mut t = vec![0.0; 6];
    let format = TensorFormat {
        layout: Layout::Nhwc,
        channel_order: ChannelOrder::Rgb,
        range: ValueRange::Signed,
    };
    frame_to_tensor(&f, &g, &format, &mut t);
    let expected = [-1.0, 1.0, -0.6, -0.2, 0.2, 0.6];
    for (a, b) in t.iter().zip(expected) {
        assert!((a - b).abs() < 1e-6, "{t:?}");
    }
}

#[test]
fn padding_fills_with_mirrored_pixels() {
    // 3×1 RGB frame padded to 4×2 (multiple 2): column 3 mirrors column 1, row 1 mirrors row 0.
    let data = [1, 1, 1, 2, 2, 2, 3, 3, 3];
    let f = frame(&data, 3, 1, PixelFormat::Rgb);
    let g = Geometry::new(3, 1, SizeRule::Multiple(2));
    let mut t = vec![0.0; 3 * 8];
    frame_to_tensor(&f, &g, &NCHW_RGB_BYTE, &mut t);
    assert_eq!(&t[..8], &[1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 2.0]);
}

#[test]
fn output_is_rounded_clamped_and_keeps_alpha() {
    let input = [9, 9, 9, 77];
    let f = frame(&input, 1, 1, PixelFormat::Rgba);
    let g = Geometry::new(1, 1, SizeRule::Multiple(1));
    let mut out = [0u8; 4];
    let mut o = frame_mut(&mut out, 1, 1, PixelFormat::Rgba);
    tensor_to_frame(
        &[-30.0, 127.5, 300.0],
        &g,
        &NCHW_RGB_BYTE,
        &Blend::default(),
        &f,
        &mut o,
    );
    assert_eq!(out, [0, 128, 255, 77]);
}

#[test]
fn non_finite_outputs_are_clamped_not_a_panic() {
    let input = [9, 9, 9];
    let f = frame(&input, 1, 1, PixelFormat::Rgb);
    let g = Geometry::new(1, 1, SizeRule::Multiple(1));
    let mut out = [1u8; 3];
    let mut o = frame_mut(&mut out, 1, 1, PixelFormat::Rgb);
    tensor_to_frame(
        &[f32::NAN, f32::INFINITY, f32::NEG_INFINITY],
        &g,
        &NCHW_RGB_BYTE,
        &Blend::default(),
        &f,
        &mut o,
    );
    assert_eq!(out, [0, 255, 0]);
}

#[test]
fn resize_round_trip_keeps_a_uniform_frame() {
    let data: Vec<u8> = [40u8, 80, 120].repeat(10 * 6);
    let f = frame(&data, 10, 6, PixelFormat::Rgb);
    let g = Geometry::new(
        10,
        6,
        SizeRule::Fixed {
            width: 4,
            height: 4,
        },
    );
    let mut t = vec![0.0; 3 * 16];
    frame_to_tensor(&f, &g, &NCHW_RGB_BYTE, &mut t);
    assert!(t[..16].iter().all(|&v| v == 40.0));
    let mut out = vec![0u8; data.len()];
    let mut o = frame_mut(&mut out, 10, 6, PixelFormat::Rgb);
    tensor_to_frame(&t, &g, &NCHW_RGB_BYTE, &Blend::default(), &f, &mut o);
    assert_eq!(out, data);
}

#[test]
fn preserve_color_keeps_the_input_chroma_and_takes_the_output_luma() {
    let input = [200, 100, 50];
    let f = frame(&input, 1, 1, PixelFormat::Rgb);
    let g = Geometry::new(1, 1, SizeRule::Multiple(1));
    let mut out = [0u8; 3];
    let mut o = frame_mut(&mut out, 1, 1, PixelFormat::Rgb);
    let blend = Blend {
        strength: 1.0,
        preserve_color: true,
    };
    // A grey output of luma 60 moves every channel by 60 − luma(200, 100, 50) = 60 − 124.2.
    tensor_to_frame(&[60.0, 60.0, 60.0], &g, &NCHW_RGB_BYTE, &blend, &f, &mut o);
    assert_eq!(out, [136, 36, 0]);
}

#[test]
fn scaled_geometry_shrinks_to_the_multiple() {
    let g = Geometry::scaled(640, 480, SizeRule::Multiple(4), 0.5);
    assert_eq!(
        (g.tensor_width, g.tensor_height, g.resample),
        (320, 240, Resample::Bilinear)
    );
    let g = Geometry::scaled(33, 17, SizeRule::Multiple(4), 0.5);
    assert_eq!((g.tensor_width, g.tensor_height), (20, 12));
    assert_eq!(
        Geometry::scaled(33, 17, SizeRule::Multiple(4), 1.0),
        Geometry::new(33, 17, SizeRule::Multiple(4))
    );
    let fixed = SizeRule::Fixed {
        width: 8,
        height: 8,
    };
    assert_eq!(
        Geometry::scaled(64, 64, fixed, 0.5),
        Geometry::new(64, 64, fixed)
    );
}

#[test]
fn conversion_on_several_threads_equals_one_thread() {
    // 641×479 (large enough to be split into bands), padded to 648×480, both layouts.
    let (w, h) = (641, 479);
    let geometry = Geometry::new(w, h, SizeRule::Multiple(8));
    for layout in [Layout::Nchw, Layout::Nhwc] {
        let format = TensorFormat {
            layout,
            channel_order: ChannelOrder::Bgr,
            range: ValueRange::Signed,
        };
        for pixel_format in [PixelFormat::Rgb, PixelFormat::Bgrx] {
            let stride = w * pixel_format.bytes_per_pixel() + 3;
            let data: Vec<u8> = (0..stride * h).map(|i| (i * 37 % 253) as u8).collect();
            let frame = FrameRef {
                data: &data,
                width: w,
                height: h,
                stride,
                format: pixel_format,
            };
            let mut one = vec![0f32; 3 * geometry.tensor_pixels()];
            frame_to_tensor(&frame, &geometry, &format, &mut one);
            let mut three = vec![0f32; one.len()];
            frame_to_tensor_threads(&frame, &geometry, &format, &mut three, 3);
            assert!(one == three, "{layout:?} {pixel_format}: input");

            let styled: Vec<f32> = one.iter().map(|v| (v * 1.7).sin()).collect();
            let mut out_one = vec![7u8; data.len()];
            let mut out_three = vec![7u8; data.len()];
            for (out, threads) in [(&mut out_one, 1), (&mut out_three, 3)] {
                let mut view = FrameMut {
                    data: out,
                    width: w,
                    height: h,
                    stride,
                    format: pixel_format,
                };
                tensor_to_frame_threads(
                    &styled,
                    &geometry,
                    &format,
                    &Blend::default(),
                    &frame,
                    &mut view,
                    threads,
                );
            }
            assert!(out_one == out_three, "{layout:?} {pixel_format}: output");
        }
    }
}

#[test]
fn conversion_matches_the_per_byte_formula_for_every_format_layout_and_range() {
    // 13×5 with padded rows, padded to 16×8: the word-at-a-time paths for 4-byte pixels and
    // the per-byte paths must both give exactly `lo + byte · (hi − lo) / 255` going in and the
    // rounded, clamped inverse coming out, with the fourth byte carried over.
    let (w, h) = (13, 5);
    let geometry = Geometry::new(w, h, SizeRule::Multiple(8));
    let (tw, th) = (geometry.tensor_width, geometry.tensor_height);
    for pixel_format in PixelFormat::ALL {
        let bpp = pixel_format.bytes_per_pixel();
        let stride = w * bpp + 5;
        let data: Vec<u8> = (0..stride * h).map(|i| (i * 91 % 256) as u8).collect();
        let f = FrameRef {
            data: &data,
            width: w,
            height: h,
            stride,
            format: pixel_format,
        };
        for layout in [Layout::Nchw, Layout::Nhwc] {
            for channel_order in [ChannelOrder::Rgb, ChannelOrder::Bgr] {
                for range in ValueRange::ALL {
                    let format = TensorFormat {
                        layout,
                        channel_order,
                        range,
                    };
                    let what = format!("{pixel_format} {layout:?} {channel_order:?} {range:?}");
                    let (lo, hi) = range.bounds();
                    let index = |c: usize, y: usize, x: usize| match layout {
                        Layout::Nchw => c * tw * th + y * tw + x,
                        Layout::Nhwc => (y * tw + x) * 3 + c,
                    };
                    let rgb_of = |c: usize| match channel_order {
                        ChannelOrder::Rgb => c,
                        ChannelOrder::Bgr => 2 - c,
                    };
                    let mut t = vec![f32::NAN; 3 * tw * th];
                    frame_to_tensor(&f, &geometry, &format, &mut t);
                    for y in 0..th {
                        for x in 0..tw {
                            let (sy, sx) = (geometry.source_row(y), geometry.source_col(x));
                            for c in 0..3 {
                                let offset = pixel_format.rgb_offsets()[rgb_of(c)];
                                let byte = data[sy * stride + sx * bpp + offset];
                                let expected = lo + byte as f32 * ((hi - lo) / 255.0);
                                assert_eq!(t[index(c, y, x)], expected, "{what} at {x},{y}");
                            }
                        }
                    }

                    let styled: Vec<f32> = (0..t.len())
                        .map(|i| lo + (hi - lo) * ((i * 53 % 300) as f32 / 280.0 - 0.03))
                        .collect();
                    let mut out = vec![7u8; data.len()];
                    let mut o = FrameMut {
                        data: &mut out,
                        width: w,
                        height: h,
                        stride,
                        format: pixel_format,
                    };
                    tensor_to_frame(&styled, &geometry, &format, &Blend::default(), &f, &mut o);
                    let scale = 255.0 / (hi - lo);
                    for y in 0..h {
                        for x in 0..w {
                            let px = y * stride + x * bpp;
                            for c in 0..3 {
                                let offset = pixel_format.rgb_offsets()[rgb_of(c)];
                                let v = styled[index(c, y, x)] * scale - lo * scale;
                                let expected = (v.clamp(0.0, 255.0) + 0.5) as u8;
                                assert_eq!(out[px + offset], expected, "{what} out at {x},{y}");
                            }
                            if bpp == 4 {
                                assert_eq!(out[px + 3], data[px + 3], "{what} fourth byte");
                            }
                        }
                        // Bytes past the row's pixels are not written.
                        assert!(out[y * stride + w * bpp..][..5].iter().all(|&b| b == 7));
                    }
                }
            }
        }
    }
}

/// Frame `(w, h)` ↔ tensor `(tw, th)` resized, for a format, as the per-pixel formula defines it:
/// each tensor (or frame) pixel is [`lerp2`] of its four [`bilinear_tap`] neighbours.
#[test]
fn bilinear_resizing_matches_the_per_pixel_formula() {
    use super::geometry::lerp2;
    let (w, h, tw, th) = (13, 7, 5, 3);
    // Frame → tensor, then tensor → frame blended (per pixel) and plain (whole words for
    // 4-byte pixels).
    let fixed = SizeRule::Fixed {
        width: tw,
        height: th,
    };
    let g = Geometry::new(w, h, fixed);
    assert_eq!(g.resample, Resample::Bilinear);
    let formats = [
        (
            PixelFormat::Rgba,
            Layout::Nchw,
            ChannelOrder::Rgb,
            ValueRange::Byte,
        ),
        (
            PixelFormat::Bgrx,
            Layout::Nhwc,
            ChannelOrder::Bgr,
            ValueRange::Signed,
        ),
    ];
    for (pixel_format, layout, channel_order, range) in formats {
        let format = TensorFormat {
            layout,
            channel_order,
            range,
        };
        let bpp = pixel_format.bytes_per_pixel();
        let data: Vec<u8> = (0..w * h * bpp).map(|i| (i * 37 % 251) as u8).collect();
        let f = frame(&data, w, h, pixel_format);
        let (lo, hi) = range.bounds();
        let channel = |c: usize| format.channel_index(c, tw * th);
        let frame_byte = |x: usize, y: usize, c: usize| {
            data[y * w * bpp + x * bpp + pixel_format.rgb_offsets()[format.rgb_channel(c)]] as f32
        };

        // Frame → tensor.
        let mut t = vec![0f32; 3 * tw * th];
        frame_to_tensor(&f, &g, &format, &mut t);
        for ty in 0..th {
            let (y0, y1, fy) = bilinear_tap(ty, th, h);
            for tx in 0..tw {
                let (x0, x1, fx) = bilinear_tap(tx, tw, w);
                for c in 0..3 {
                    let v = lerp2(
                        frame_byte(x0, y0, c),
                        frame_byte(x1, y0, c),
                        frame_byte(x0, y1, c),
                        frame_byte(x1, y1, c),
                        fx,
                        fy,
                    );
                    let (start, step) = channel(c);
                    let expected = lo + v * ((hi - lo) / 255.0);
                    assert_eq!(
                        t[start + (ty * tw + tx) * step],
                        expected,
                        "{pixel_format} {c}"
                    );
                }
            }
        }

        // Tensor → frame, blended with the input.
        let t: Vec<f32> = (0..3 * tw * th)
            .map(|i| lo + (hi - lo) * (i * 7 % 11) as f32 / 10.0)
            .collect();
        for strength in [0.7, 1.0] {
            let blend = Blend {
                strength,
                preserve_color: false,
            };
            let mut out = vec![0u8; data.len()];
            let mut o = frame_mut(&mut out, w, h, pixel_format);
            tensor_to_frame(&t, &g, &format, &blend, &f, &mut o);
            let scale = 255.0 / (hi - lo);
            let sample = |x: usize, y: usize, rgb: usize| {
                let c = (0..3).find(|&c| format.rgb_channel(c) == rgb).unwrap();
                let (start, step) = channel(c);
                t[start + (y * tw + x) * step] * scale - lo * scale
            };
            for y in 0..h {
                let (y0, y1, fy) = bilinear_tap(y, h, th);
                for x in 0..w {
                    let (x0, x1, fx) = bilinear_tap(x, w, tw);
                    for rgb in 0..3 {
                        let styled = lerp2(
                            sample(x0, y0, rgb),
                            sample(x1, y0, rgb),
                            sample(x0, y1, rgb),
                            sample(x1, y1, rgb),
                            fx,
                            fy,
                        );
                        let at = y * w * bpp + x * bpp + pixel_format.rgb_offsets()[rgb];
                        let original = data[at] as f32;
                        let expected = to_byte(strength * styled + (1.0 - strength) * original);
                        assert_eq!(
                            out[at], expected,
                            "{pixel_format} {strength} ({x}, {y}) {rgb}"
                        );
                    }
                    if let Some(a) = pixel_format.alpha_offset() {
                        let at = y * w * bpp + x * bpp + a;
                        assert_eq!(out[at], data[at]);
                    }
                }
            }
        }
    }
}

#[test]
fn threads_write_what_one_thread_writes_when_resizing_or_blending() {
    let (w, h) = (640, 480);
    assert!(w * h >= PARALLEL_PIXELS);
    let format = PixelFormat::Rgbx;
    let data: Vec<u8> = (0..w * h * 4).map(|i| (i * 31 % 253) as u8).collect();
    let f = frame(&data, w, h, format);
    let cases = [
        (SizeRule::Multiple(4), 0.5, Blend::default()),
        (
            SizeRule::Multiple(4),
            0.5,
            Blend {
                strength: 0.6,
                preserve_color: true,
            },
        ),
        (
            SizeRule::Multiple(8),
            1.0,
            Blend {
                strength: 0.3,
                preserve_color: false,
            },
        ),
    ];
    for (rule, scale, blend) in cases {
        let g = Geometry::scaled(w, h, rule, scale);
        let t: Vec<f32> = (0..3 * g.tensor_pixels())
            .map(|i| (i * 13 % 256) as f32)
            .collect();
        let mut one = vec![0u8; data.len()];
        tensor_to_frame(
            &t,
            &g,
            &NCHW_RGB_BYTE,
            &blend,
            &f,
            &mut frame_mut(&mut one, w, h, format),
        );
        let mut three = vec![0u8; data.len()];
        let mut o = frame_mut(&mut three, w, h, format);
        tensor_to_frame_threads(&t, &g, &NCHW_RGB_BYTE, &blend, &f, &mut o, 3);
        assert!(one == three, "{:?} {blend:?}", g.resample);
    }
}
