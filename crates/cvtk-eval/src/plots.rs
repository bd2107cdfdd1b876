//! Plots with plotters: ROC curves, PR curves, the confusion matrix as a heat
//! map with counts, training curves and the reliability diagram. Counterparts of the original's
//! `graph_roc_curve`, `graph_pr_curve` and `graph_confusion_matrix`. Each
//! renders to PNG (text drawn with the embedded DejaVu Sans, so no system fonts
//! are needed), to an SVG file, or to an SVG string for the HTML report.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::metrics::ClassificationEvaluation;
use crate::{Error, Result};

const FONT: &str = "sans-serif";

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_err()
            || plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_err()
        {
            tracing::warn!("cannot register the embedded DejaVu font; PNG text may be missing");
        }
    });
}

/// Where a plot goes.
pub enum Target<'a> {
    /// A PNG or SVG file, chosen by its extension.
    File(&'a Path),
    /// An SVG document in a string.
    SvgString(&'a mut String),
}

fn plot_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::Plot(format!("{e:?}"))
}

macro_rules! render {
    ($target:expr, $size:expr, $draw:ident, $($arg:expr),*) => {{
        register_fonts();
        match $target {
            Target::SvgString(s) => {
                let root = SVGBackend::with_string(s, $size).into_drawing_area();
                $draw(&root, $($arg),*)?;
                root.present().map_err(plot_err)
            }
            Target::File(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create folder", dir.to_path_buf(), e))?;
                }
                match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
                    Some("svg") => {
                        let root = SVGBackend::new(path, $size).into_drawing_area();
                        $draw(&root, $($arg),*)?;
                        root.present().map_err(plot_err)
                    }
                    Some("png") => {
                        let root = BitMapBackend::new(path, $size).into_drawing_area();
                        $draw(&root, $($arg),*)?;
                        root.present().map_err(plot_err)
                    }
                    _ => Err(Error::Invalid(format!("{}: plots are written as .png or .svg", path.display()))),
                }
            }
        }
    }};
}

fn colour(i: usize) -> RGBColor {
    // Tableau 10: distinct and readable.
    const C: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = C[i % C.len()];
    RGBColor(r, g, b)
}

type Curve = (String, Vec<(f64, f64)>, RGBColor, bool);

/// The reliability diagram's accuracy bars and their legend swatch: Tableau
/// blue at 85% on white, opaque.
const ACCURACY_FILL: RGBColor = RGBColor(65, 139, 191);
/// The reliability diagram's gap bars and their legend swatch: Tableau red at
/// 35% on white, opaque, so that a gap drawn over an accuracy bar shows the
/// legend's colour too (a translucent one turned purple there).
const GAP_FILL: RGBColor = RGBColor(241, 179, 180);
/// How much of each side of its bin a gap bar leaves free, so that the
/// accuracy bar stays in sight beside a gap drawn over it.
const GAP_INSET: f64 = 0.25;

fn curves_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    curves: &[Curve],
    diagonal: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22).into_font().style(FontStyle::Bold))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(54)
        .build_cartesian_2d(0f64..1.0, 0f64..1.02)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 13))
        .light_line_style(RGBColor(240, 240, 240))
        .max_light_lines(1)
        .draw()
        .map_err(plot_err)?;
    if diagonal {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, 0.0), (1.0, 1.0)],
                6,
                4,
                RGBColor(150, 150, 150).stroke_width(1),
            ))
            .map_err(plot_err)?
            .label("chance")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RGBColor(150, 150, 150)));
    }
    for (name, points, c, dashed) in curves {
        let style = c.stroke_width(2);
        let c = *c;
        let series = if *dashed {
            chart.draw_series(DashedLineSeries::new(points.clone(), 8, 4, style)).map_err(plot_err)?
        } else {
            chart.draw_series(LineSeries::new(points.clone(), style)).map_err(plot_err)?
        };
        series
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font((FONT, 13))
        .position(if diagonal { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::LowerLeft })
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

fn roc_curves(e: &ClassificationEvaluation) -> Vec<Curve> {
    let mut curves: Vec<Curve> = (0..e.labels().len())
        .filter_map(|c| {
            e.roc_curve(c).map(|r| {
                (
                    format!("{} (AUC {:.3})", e.labels()[c], r.auc),
                    r.fpr.into_iter().zip(r.tpr).collect(),
                    colour(c),
                    false,
                )
            })
        })
        .collect();
    if let Some(m) = e.micro_roc_curve() {
        curves.push((format!("micro-average (AUC {:.3})", m.auc), m.fpr.into_iter().zip(m.tpr).collect(), BLACK, true));
    }
    curves
}

/// A step curve through the points, holding each y until the next x
/// (matplotlib's `drawstyle="steps-post"`, as scikit-learn draws PR curves).
fn steps(x: &[f64], y: &[f64]) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(2 * x.len());
    for i in 0..x.len() {
        if i > 0 {
            out.push((x[i], y[i - 1]));
        }
        out.push((x[i], y[i]));
    }
    out
}

fn pr_curves(e: &ClassificationEvaluation) -> Vec<Curve> {
    let mut curves: Vec<Curve> = (0..e.labels().len())
        .filter_map(|c| {
            e.pr_curve(c).map(|p| {
                (
                    format!("{} (AP {:.3})", e.labels()[c], p.average_precision),
                    steps(&p.recall, &p.precision),
                    colour(c),
                    false,
                )
            })
        })
        .collect();
    if let Some(m) = e.micro_pr_curve() {
        curves.push((
            format!("micro-average (AP {:.3})", m.average_precision),
            steps(&m.recall, &m.precision),
            BLACK,
            true,
        ));
    }
    curves
}

fn roc_chart<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, e: &ClassificationEvaluation) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let title = match e.macro_auc() {
        Some(a) => format!("ROC curves (macro AUC {a:.3})"),
        None => "ROC curves (undefined: needs two labels with test images)".into(),
    };
    curves_chart(root, &title, "false positive rate", "true positive rate", &roc_curves(e), true)
}

fn pr_chart<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, e: &ClassificationEvaluation) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let title = match e.macro_average_precision() {
        Some(a) => format!("Precision-recall curves (mean AP {a:.3})"),
        None => "Precision-recall curves".into(),
    };
    curves_chart(root, &title, "recall", "precision", &pr_curves(e), false)
}

fn confusion_chart<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, e: &ClassificationEvaluation) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(plot_err)?;
    let cm = e.confusion_matrix();
    let norm = cm.normalized();
    let k = cm.labels.len() as i32;
    let title = format!(
        "Confusion matrix (accuracy {:.1}%, class-averaged {:.1}%)",
        100.0 * e.accuracy(),
        100.0 * e.class_averaged_accuracy()
    );
    let longest = cm.labels.iter().map(|l| l.chars().count()).max().unwrap_or(1) as u32;
    // Rows from the top: true label t is drawn at y = k - 1 - t. (plotters'
    // integer ranges are inclusive: 0..k-1 holds k cells.)
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 20).into_font().style(FontStyle::Bold))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(36 + 8 * longest.min(20))
        .build_cartesian_2d((0..k - 1).into_segmented(), (0..k - 1).into_segmented())
        .map_err(plot_err)?;
    let name = |v: &SegmentValue<i32>, flip: bool| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
            let idx = if flip { k - 1 - *i } else { *i };
            usize::try_from(idx).ok().and_then(|i| cm.labels.get(i)).cloned().unwrap_or_default()
        }
        SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("predicted label")
        .y_desc("true label")
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 13))
        .x_labels(k as usize + 1)
        .y_labels(k as usize + 1)
        .x_label_formatter(&|v| name(v, false))
        .y_label_formatter(&|v| name(v, true))
        .draw()
        .map_err(plot_err)?;
    let font_size = if k <= 6 {
        20
    } else if k <= 12 {
        14
    } else {
        9
    };
    let centre = plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Center,
        plotters::style::text_anchor::VPos::Center,
    );
    for (t, row) in cm.counts.iter().enumerate() {
        for (p, &count) in row.iter().enumerate() {
            let v = norm[t][p];
            // White to a deep blue by the row-normalised value.
            let fill = RGBColor((247.0 - 239.0 * v) as u8, (251.0 - 203.0 * v) as u8, (255.0 - 148.0 * v) as u8);
            let (x, y) = (p as i32, k - 1 - t as i32);
            let cell = Rectangle::new(
                [
                    (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                ],
                fill.filled(),
            );
            chart.draw_series(std::iter::once(cell)).map_err(plot_err)?;
            let text_colour = if v > 0.5 { WHITE } else { BLACK };
            let style = TextStyle::from((FONT, font_size).into_font()).color(&text_colour).pos(centre);
            chart
                .draw_series(std::iter::once(Text::new(
                    count.to_string(),
                    (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
                    style,
                )))
                .map_err(plot_err)?;
        }
    }
    Ok(())
}

type XyChart<'a, DB> =
    ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>;

/// A white chart with a title, light grid and axis descriptions.
fn xy_chart<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    (x_desc, y_desc): (&str, &str),
) -> Result<XyChart<'a, DB>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22).into_font().style(FontStyle::Bold))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(x, y)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 13))
        .light_line_style(RGBColor(240, 240, 240))
        .max_light_lines(1)
        .draw()
        .map_err(plot_err)?;
    Ok(chart)
}

fn training_chart<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, train: &[f64], test: &[f64]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let epochs = train.len().max(test.len()).max(1);
    let mut chart =
        xy_chart(root, "Training curves", 1f64..(epochs as f64).max(2.0), 0f64..1.02, ("epoch", "accuracy"))?;
    for (name, values, c) in [("train", train, colour(0)), ("test", test, colour(1))] {
        if values.is_empty() {
            continue;
        }
        let pts: Vec<(f64, f64)> = values.iter().enumerate().map(|(i, &v)| ((i + 1) as f64, v)).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(plot_err)?
            .label(format!("{name} accuracy"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, c.filled()))).map_err(plot_err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font((FONT, 13))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

fn reliability_chart<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, e: &ClassificationEvaluation) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let r = e.reliability(crate::CALIBRATION_BINS);
    let title = format!("Reliability diagram (ECE {:.3})", r.expected_calibration_error);
    let mut chart =
        xy_chart(root, &title, 0f64..1.0, 0f64..1.02, ("confidence (probability of the predicted label)", "accuracy"))?;
    chart
        .draw_series(
            r.bins.iter().filter_map(|b| {
                b.accuracy.map(|a| Rectangle::new([(b.lower, 0.0), (b.upper, a)], ACCURACY_FILL.filled()))
            }),
        )
        .map_err(plot_err)?
        .label("accuracy of the images in the bin")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], ACCURACY_FILL.filled()));
    chart
        .draw_series(r.bins.iter().filter_map(|b| match (b.accuracy, b.confidence) {
            (Some(a), Some(c)) => {
                let inset = (b.upper - b.lower) * GAP_INSET;
                Some(Rectangle::new([(b.lower + inset, a), (b.upper - inset, c)], GAP_FILL.filled()))
            }
            _ => None,
        }))
        .map_err(plot_err)?
        .label("gap to their mean confidence")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], GAP_FILL.filled()));
    chart
        .draw_series(DashedLineSeries::new(vec![(0.0, 0.0), (1.0, 1.0)], 6, 4, RGBColor(120, 120, 120).stroke_width(1)))
        .map_err(plot_err)?
        .label("perfect calibration")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RGBColor(120, 120, 120)));
    let small = TextStyle::from((FONT, 11).into_font()).color(&RGBColor(60, 60, 60));
    chart
        .draw_series(r.bins.iter().filter(|b| b.images > 0).map(|b| {
            Text::new(
                b.images.to_string(),
                (b.lower + 0.004, b.accuracy.unwrap_or(0.0).max(0.0) + 0.015),
                small.clone(),
            )
        }))
        .map_err(plot_err)?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font((FONT, 13))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

fn latency_chart<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, points: &[(f64, f64)], title: &str) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let top = points.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-3) * 1.08;
    let mut chart = xy_chart(root, title, 0f64..100f64, 0f64..top, ("percentile", "latency (ms)"))?;
    let c = colour(0);
    chart.draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2))).map_err(plot_err)?;
    for (p, name) in [(50.0, "p50"), (90.0, "p90"), (99.0, "p99")] {
        if let Some(&(x, y)) = points.iter().find(|(x, _)| *x >= p) {
            chart.draw_series(std::iter::once(Circle::new((x, y), 4, colour(1).filled()))).map_err(plot_err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{name} {y:.1} ms"),
                    (x - 12.0, y + top * 0.04),
                    (FONT, 13),
                )))
                .map_err(plot_err)?;
        }
    }
    Ok(())
}

/// A latency distribution: `points` are (percentile 0..=100, milliseconds),
/// in increasing percentile order, as a load test measures them.
pub fn graph_latency_percentiles(points: &[(f64, f64)], title: &str, target: Target<'_>) -> Result<()> {
    render!(target, (760, 480), latency_chart, points, title)
}

/// ROC curves of every label, the micro average and the chance line.
pub fn graph_roc_curve(e: &ClassificationEvaluation, target: Target<'_>) -> Result<()> {
    render!(target, (760, 600), roc_chart, e)
}

/// Precision-recall curves of every label and the micro average.
pub fn graph_pr_curve(e: &ClassificationEvaluation, target: Target<'_>) -> Result<()> {
    render!(target, (760, 600), pr_chart, e)
}

/// The confusion matrix as a heat map (row-normalised colour, counts in the cells).
pub fn graph_confusion_matrix(e: &ClassificationEvaluation, target: Target<'_>) -> Result<()> {
    let k = e.labels().len() as u32;
    let side = (420 + 40 * k.min(20)).min(1100);
    render!(target, (side + 120, side), confusion_chart, e)
}

/// The reliability diagram: per confidence bin, the accuracy of its images
/// against their mean confidence, with the image count over each bar and the
/// expected calibration error in the title.
pub fn graph_reliability_diagram(e: &ClassificationEvaluation, target: Target<'_>) -> Result<()> {
    render!(target, (760, 600), reliability_chart, e)
}

/// Train and test accuracy per epoch (`TransferModel::train_eval_accs`).
pub fn graph_training_curves(train: &[f64], test: &[f64], target: Target<'_>) -> Result<()> {
    render!(target, (760, 480), training_chart, train, test)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cvtk_core::ScoreKind;

    /// A `<rect>` of an SVG plotters wrote: its box, its fill (`None` for an
    /// outline) and its opacity.
    #[derive(Debug)]
    struct Rect {
        x: f64,
        y: f64,
        w: f64,
        h: f64,
        fill: Option<(f64, f64, f64)>,
        opacity: f64,
    }

    fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
        let start = tag.find(&format!(" {name}=\"")).unwrap_or_else(|| panic!("no {name} in {tag}")) + name.len() + 3;
        &tag[start..start + tag[start..].find('"').unwrap()]
    }

    /// The rects in drawing order, and how many came before the last text
    /// (the legend's labels, drawn just before its swatches).
    fn rects(svg: &str) -> (Vec<Rect>, usize) {
        let (mut out, mut before_last_text) = (Vec::new(), 0);
        for (at, _) in svg.match_indices('<') {
            let tag = &svg[at..at + svg[at..].find('>').unwrap()];
            if tag.starts_with("<text") {
                before_last_text = out.len();
            } else if tag.starts_with("<rect") {
                let num = |n| attr(tag, n).parse::<f64>().unwrap();
                let fill = attr(tag, "fill");
                let hex = |i: usize| u8::from_str_radix(&fill[i..i + 2], 16).unwrap() as f64;
                out.push(Rect {
                    x: num("x"),
                    y: num("y"),
                    w: num("width"),
                    h: num("height"),
                    fill: (fill != "none").then(|| (hex(1), hex(3), hex(5))),
                    opacity: num("opacity"),
                });
            }
        }
        (out, before_last_text)
    }

    /// The colour a person sees at the centre of `rects[i]`: every filled rect
    /// over that point, drawn in order up to and including `i`, over white.
    fn seen(rects: &[Rect], i: usize) -> (u8, u8, u8) {
        let (px, py) = (rects[i].x + rects[i].w / 2.0, rects[i].y + rects[i].h / 2.0);
        let mut c = (255.0, 255.0, 255.0);
        for r in &rects[..=i] {
            if let Some((fr, fg, fb)) = r.fill.filter(|_| px >= r.x && px <= r.x + r.w && py >= r.y && py <= r.y + r.h)
            {
                let a = r.opacity;
                c = (c.0 * (1.0 - a) + fr * a, c.1 * (1.0 - a) + fg * a, c.2 * (1.0 - a) + fb * a);
            }
        }
        (c.0.round() as u8, c.1.round() as u8, c.2.round() as u8)
    }

    /// Images in two bins: confidences 0.55, all right (accuracy above
    /// confidence, the gap inside the accuracy bar), and 0.95, half wrong (the
    /// gap above the bar).
    fn under_and_over_confident() -> ClassificationEvaluation {
        let (mut y, mut s) = (Vec::new(), Vec::new());
        for _ in 0..4 {
            y.push(0);
            s.push(vec![0.55, 0.45]);
        }
        for right in [true, false, true, false] {
            y.push(if right { 0 } else { 1 });
            s.push(vec![0.95, 0.05]);
        }
        ClassificationEvaluation::new(vec!["a".into(), "b".into()], y, s, ScoreKind::Probabilities).unwrap()
    }

    #[test]
    fn the_reliability_gap_bars_show_the_colour_of_their_legend_swatch() {
        let mut svg = String::new();
        graph_reliability_diagram(&under_and_over_confident(), Target::SvgString(&mut svg)).unwrap();
        let (rects, legend_start) = rects(&svg);
        // The legend's swatches, drawn after its labels: the accuracy bar's, then the gap's.
        let swatches: Vec<usize> = (legend_start..rects.len()).filter(|&i| rects[i].fill.is_some()).collect();
        assert_eq!(swatches.len(), 2, "{svg}");
        let swatch = swatches[1];
        let gaps: Vec<usize> = (0..legend_start)
            .filter(|&i| rects[i].fill == rects[swatch].fill && rects[i].opacity == rects[swatch].opacity)
            .collect();
        assert_eq!(gaps.len(), 2, "one gap bar per non-empty bin: {rects:?}");
        let legend = seen(&rects, swatch);
        for i in gaps {
            assert_eq!(seen(&rects, i), legend, "gap bar {:?} against the legend's {:?}", rects[i], rects[swatch]);
        }
    }
}
