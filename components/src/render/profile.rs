//! Embedded ICC colour profiles. Responses are sRGB and carry no profile: a source in
//! another RGB space (Adobe RGB, Display P3) has its pixels converted, so every format,
//! including those whose encoders write no profile, shows the same colours in every
//! browser, and no response carries a profile's bytes. Conversion is `moxcms`'s.

use moxcms::{ColorProfile, DataColorSpace, Layout, Transform8BitExecutor, TransformOptions};

use super::raster::Raster;

/// Converts `raster`'s pixels from the RGB space `icc` describes to sRGB. Profiles that
/// cannot be read or are not RGB (grey, CMYK) are ignored, as browsers do; an sRGB profile
/// leaves the pixels as they are.
pub fn convert_to_srgb(raster: &mut Raster, icc: &[u8]) {
    let Ok(source) = ColorProfile::new_from_slice(icc) else {
        return;
    };
    if source.color_space != DataColorSpace::Rgb {
        return;
    }
    let layout = if raster.has_alpha {
        Layout::Rgba
    } else {
        Layout::Rgb
    };
    let srgb = ColorProfile::new_srgb();
    let Ok(transform) =
        source.create_transform_8bit(layout, &srgb, layout, TransformOptions::default())
    else {
        return;
    };
    if is_identity(transform.as_ref(), raster.channels()) {
        return;
    }
    let mut converted = vec![0; raster.data.len()];
    if transform.transform(&raster.data, &mut converted).is_ok() {
        raster.data = converted;
    }
}

/// Whether `transform` leaves every level of every primary and of grey within one step:
/// the profile is sRGB in effect (as most profiles of photos are), and converting would
/// only cost time and add rounding.
fn is_identity(transform: &Transform8BitExecutor, channels: usize) -> bool {
    let probe: Vec<u8> = (0..=255u8)
        .flat_map(|v| [[v, 0, 0], [0, v, 0], [0, 0, v], [v, v, v]])
        .flat_map(|rgb| [rgb[0], rgb[1], rgb[2], 255].into_iter().take(channels))
        .collect();
    let mut out = vec![0; probe.len()];
    transform.transform(&probe, &mut out).is_ok()
        && probe.iter().zip(&out).all(|(a, b)| a.abs_diff(*b) <= 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saturated() -> Raster {
        Raster::new(2, 1, false, vec![0, 200, 0, 30, 60, 220])
    }

    fn icc(profile: ColorProfile) -> Vec<u8> {
        profile.encode().unwrap()
    }

    #[test]
    fn srgb_and_unreadable_profiles_leave_the_pixels_alone() {
        for profile in [icc(ColorProfile::new_srgb()), b"not a profile".to_vec()] {
            let mut r = saturated();
            convert_to_srgb(&mut r, &profile);
            assert_eq!(r, saturated());
        }
    }

    #[test]
    fn wide_gamut_greens_become_more_saturated_in_srgb() {
        for profile in [
            ColorProfile::new_adobe_rgb(),
            ColorProfile::new_display_p3(),
        ] {
            let mut r = saturated();
            convert_to_srgb(&mut r, &icc(profile));
            assert!(r.data[0] == 0 && r.data[1] > 200, "{:?}", r.data);
        }
    }
}
