//! SVG -> PNG, for mail clients, which do not show SVG: the chart in a mail is the very same
//! SVG source as in the HTML report, rasterized here with resvg.
//!
//! resvg draws no text at all when its font database has no matching face, and says nothing,
//! so the DejaVu Sans faces shipped in the binary (the `dejavu` crate) are loaded once and
//! made the sans-serif family. Pure: no IO (no system fonts are read), not async.

use std::sync::{Arc, OnceLock};

use resvg::tiny_skia::{Pixmap, Transform};
use resvg::usvg;

/// Why an SVG could not become a PNG (a bug in the chart's SVG, or an absurd size).
#[derive(Debug, thiserror::Error)]
pub enum PngError {
    /// The SVG did not parse.
    #[error("cannot read the chart SVG: {0}")]
    Parse(String),
    /// The scaled image has no pixels or is too large to allocate.
    #[error("cannot rasterize a {width}×{height} chart")]
    Size { width: u32, height: u32 },
    /// PNG encoding failed.
    #[error("cannot encode the chart PNG: {0}")]
    Encode(String),
}

/// The font database: DejaVu Sans (regular and bold, for the bold chart title) as the
/// sans-serif family, built once per process.
fn fonts() -> Arc<usvg::fontdb::Database> {
    static FONTS: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let mut db = usvg::fontdb::Database::new();
            db.load_font_data(dejavu::sans::regular().to_vec());
            db.load_font_data(dejavu::sans::bold().to_vec());
            db.set_sans_serif_family("DejaVu Sans");
            Arc::new(db)
        })
        .clone()
}

/// Renders `svg` at `scale` (2.0 gives sharp images on high-density screens) onto a pixmap.
pub fn rasterize(svg: &str, scale: f32) -> Result<Pixmap, PngError> {
    let options = usvg::Options { fontdb: fonts(), ..usvg::Options::default() };
    let tree = usvg::Tree::from_str(svg, &options).map_err(|e| PngError::Parse(e.to_string()))?;
    let size = tree.size().to_int_size();
    let (width, height) = ((size.width() as f32 * scale).ceil() as u32, (size.height() as f32 * scale).ceil() as u32);
    let mut pixmap = Pixmap::new(width, height).ok_or(PngError::Size { width, height })?;
    resvg::render(&tree, Transform::from_scale(scale, scale), &mut pixmap.as_mut());
    Ok(pixmap)
}

/// `svg` as PNG bytes at `scale`.
pub fn svg_to_png(svg: &str, scale: f32) -> Result<Vec<u8>, PngError> {
    rasterize(svg, scale)?.encode_png().map_err(|e| PngError::Encode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pixels darker than mid-grey inside a rectangle of the pixmap.
    fn dark_pixels(pixmap: &Pixmap, x: std::ops::Range<u32>, y: std::ops::Range<u32>) -> usize {
        let mut n = 0;
        for row in y {
            for col in x.clone() {
                if let Some(p) = pixmap.pixel(col, row) {
                    let p = p.demultiply();
                    if p.alpha() > 128 && (u32::from(p.red()) + u32::from(p.green()) + u32::from(p.blue())) < 3 * 110 {
                        n += 1;
                    }
                }
            }
        }
        n
    }

    const TEXT_ONLY: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40" font-family="DejaVu Sans, Helvetica, Arial, sans-serif"><rect width="200" height="40" fill="#ffffff"/><text x="10" y="28" font-size="20" font-weight="bold" fill="#1f2328">Relative effect</text></svg>"##;

    #[test]
    fn text_is_drawn_with_the_shipped_font() {
        // resvg silently skips text without a font: dark pixels where the words are prove
        // the font was found. The rectangle alone is white.
        let pixmap = rasterize(TEXT_ONLY, 1.0).expect("renders");
        assert_eq!((pixmap.width(), pixmap.height()), (200, 40));
        assert!(dark_pixels(&pixmap, 0..200, 0..40) > 200, "text drawn");
    }

    #[test]
    fn the_sans_serif_fallback_is_dejavu_too() {
        let svg = TEXT_ONLY.replace("DejaVu Sans, Helvetica, Arial, sans-serif", "sans-serif");
        let pixmap = rasterize(&svg, 1.0).expect("renders");
        assert!(dark_pixels(&pixmap, 0..200, 0..40) > 200);
    }

    #[test]
    fn the_report_chart_title_has_dark_pixels_in_the_png() {
        let result = crate::results::sample_result();
        let svg = crate::render::chart::relative_effects_svg(&result).expect("a chart");
        let png = svg_to_png(&svg, 2.0).expect("png");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let pixmap = Pixmap::decode_png(&png).expect("decodes");
        // The title is drawn from x = 8 at baseline y = 18 (chart.rs), so at scale 2 it lies
        // in x 16..440, y 10..44; the viewBox is 400 wide.
        assert_eq!(pixmap.width(), 800);
        assert!(dark_pixels(&pixmap, 16..440, 10..44) > 300, "title text drawn");
        // The first row's name (the primary, in bold) has its baseline at y = 92 + 16.
        assert!(dark_pixels(&pixmap, 16..200, 188..222) > 100, "labels drawn");
    }

    #[test]
    fn a_broken_svg_is_an_error() {
        assert!(matches!(svg_to_png("<svg", 1.0), Err(PngError::Parse(_))));
    }
}
