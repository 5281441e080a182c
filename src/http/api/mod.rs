//! The JSON API's handlers, one small module per area, each a function from the request
//! (already decoded, logged in and checked by `http::answer`) to an answer or an
//! `ApiError`: `paths` (status, paths, cameras, health, metrics, the page), `config`
//! (the config document and paths in it), `admin` (session, first-run setup, the admin
//! password). Recordings and MediaMTX's API have their own modules beside (`recordings`,
//! `mediamtx`).
//!
//! Owns: what each route does and answers. Does not own: routes and who may ask
//! (`routes`), the login (`login`), errors' status codes and bodies (`error`).

pub mod admin;
pub mod config;
pub mod paths;
pub mod streams;
