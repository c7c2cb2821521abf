//! `imageserving-svg`: see [`imageserving_components::cli::Component::Svg`].

fn main() -> std::process::ExitCode {
    imageserving_components::daemon::main(imageserving_components::cli::Component::Svg)
}
