"""The simulated academic office (ASP.NET WebForms), mounted under /jwc/."""
