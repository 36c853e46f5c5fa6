//! PNG plots of a run's log with `plotters`: losses (log scale) and metrics against the step.

use std::path::Path;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

type Record = serde_json::Map<String, serde_json::Value>;

/// Plots every numeric field of `records` except `step`, `lr` and `elapsed_s` whose name passes
/// `select`,
/// against `step`. Returns the number of series drawn.
pub fn plot(
    records: &[Record],
    select: impl Fn(&str) -> bool,
    log_y: bool,
    title: &str,
    path: &Path,
) -> anyhow::Result<usize> {
    let mut names: Vec<String> = records
        .iter()
        .flat_map(|r| r.keys().cloned())
        .filter(|k| !["step", "lr", "elapsed_s"].contains(&k.as_str()) && select(k))
        .collect();
    names.sort();
    names.dedup();
    let series: Vec<(String, Vec<(f64, f64)>)> = names
        .into_iter()
        .map(|name| {
            let points = records
                .iter()
                .filter_map(|r| {
                    let x = r.get("step")?.as_f64()?;
                    let y = r.get(&name)?.as_f64()?;
                    (y.is_finite() && (!log_y || y > 0.0)).then_some((x, y))
                })
                .collect::<Vec<_>>();
            (name, points)
        })
        .filter(|(_, p)| !p.is_empty())
        .collect();
    if series.is_empty() {
        return Ok(0);
    }
    let all = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + y0.abs().max(1.0) * 0.1;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let root = BitMapBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70);
    if log_y {
        draw_lines(
            builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale())?,
            &series,
        )?;
    } else {
        draw_lines(builder.build_cartesian_2d(x0..x1, y0..y1)?, &series)?;
    }
    root.present()?;
    Ok(series.len())
}

/// Draws named point series as lines with a legend, on a linear or logarithmic y axis.
fn draw_lines<'a, Y>(
    mut chart: ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    series: &[(String, Vec<(f64, f64)>)],
) -> anyhow::Result<()>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let colours = |i: usize| Palette99::pick(i).to_rgba();
    chart.configure_mesh().x_desc("step").draw()?;
    for (i, (name, points)) in series.iter().enumerate() {
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colours(i).stroke_width(2),
            ))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], colours(i).stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Writes `plots/losses.png` (fields starting with `loss`) and `plots/metrics.png` (the rest).
pub fn plot_run(run: &super::run::RunDir) -> anyhow::Result<()> {
    let records = run.read_log()?;
    let dir = run.plots_dir();
    plot(
        &records,
        |k| k.starts_with("loss"),
        true,
        "losses",
        &dir.join("losses.png"),
    )?;
    plot(
        &records,
        |k| !k.starts_with("loss"),
        false,
        "metrics",
        &dir.join("metrics.png"),
    )?;
    Ok(())
}
