//! `imageserving-ps`: see [`imageserving_components::cli::Component::Platform`].

fn main() -> std::process::ExitCode {
    imageserving_components::daemon::main(imageserving_components::cli::Component::Platform)
}
