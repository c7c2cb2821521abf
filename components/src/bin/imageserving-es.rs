//! `imageserving-es`: see [`imageserving_components::cli::Component::Image`].

fn main() -> std::process::ExitCode {
    imageserving_components::daemon::main(imageserving_components::cli::Component::Image)
}
