// esbuild bundles the stylesheets the entry imports into page.css; to the type checker they are modules with nothing in them.
declare module "*.css";
