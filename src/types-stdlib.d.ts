declare module "@stdlib/math-base-special-erf" {
  const erf: (x: number) => number;
  export default erf;
}
