//! Every text a person reads, in one place, so a translation is one directory: [`pages`] for the
//! pages and the API's messages.

pub mod pages;
