//! Property tests of the parts that see untrusted input: the modifier parser, URL path
//! checks and the layout arithmetic.

use std::path::{Component, Path};

use imageserving_components::{Dimensions, Layout, Modifiers, segments};
use proptest::prelude::*;

/// Query-like strings: fragments of real modifiers mixed with arbitrary text.
fn query() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "(wid|hei|scl|fit|fmt|qlt|bgc|req|WID|x)=[-0-9a-zA-Z.,%]{0,12}",
        "fit=(fit|constrain|crop|wrap|stretch|hfit|vfit)(,[01])?",
        "(wid|hei)=[0-9]{1,6}",
        "scl=[0-9]{1,3}(\\.[0-9]{1,3})?",
        ".{0,20}",
    ];
    prop::collection::vec(piece, 0..8).prop_map(|parts| parts.join("&"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_parser_never_panics_and_its_canonical_form_round_trips(q in query()) {
        if let Ok(m) = Modifiers::parse(&q) {
            let canonical = m.canonical();
            let again = Modifiers::parse(&canonical).expect("canonical form parses");
            prop_assert_eq!(&again, &m);
            prop_assert_eq!(again.canonical(), canonical);
        }
    }

    #[test]
    fn accepted_paths_stay_below_their_root(raw in "[a-z./%2eEfF5cC0\\\\]{0,40}") {
        if let Ok(segments) = segments(&raw) {
            let joined = segments.join("/");
            for c in Path::new(&joined).components() {
                prop_assert!(matches!(c, Component::Normal(_)), "{raw:?} gave {c:?}");
            }
            prop_assert!(segments.iter().all(|s| !s.is_empty() && !s.starts_with('.')));
            prop_assert!(segments.iter().all(|s| !s.contains(['/', '\\', '\0'])));
        }
    }

    #[test]
    fn layouts_stay_inside_canvas_source_and_max_pix(
        sw in 1u32..5000, sh in 1u32..5000, q in query(),
    ) {
        let max = Dimensions::new(2000, 2000);
        let Ok(m) = Modifiers::parse(&q) else { return Ok(()) };
        if let Ok(l) = Layout::new((sw, sh), m.size, m.fit, Dimensions::new(1280, 1280), max) {
            prop_assert!(l.canvas.0 >= 1 && l.canvas.1 >= 1);
            prop_assert!(l.canvas.0 <= max.width && l.canvas.1 <= max.height);
            prop_assert!(l.dest.width >= 1 && l.dest.height >= 1);
            prop_assert!(l.dest.x + l.dest.width <= l.canvas.0);
            prop_assert!(l.dest.y + l.dest.height <= l.canvas.1);
            prop_assert!(l.source.x >= 0.0 && l.source.y >= 0.0);
            prop_assert!(l.source.width > 0.0 && l.source.height > 0.0);
            prop_assert!(l.source.x + l.source.width <= f64::from(sw) + 1e-6);
            prop_assert!(l.source.y + l.source.height <= f64::from(sh) + 1e-6);
        }
    }
}
