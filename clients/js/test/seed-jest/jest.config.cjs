// Jest for the seed's unit tests (seed.test.ts): jsdom, as in a browser, and Babel to strip the
// TypeScript and turn our ES modules into CommonJS (Jest's default module system). A .cjs file,
// as clients/js/package.json says "type": "module". Run: npm --prefix clients/js run test:jest
// (or `make test`, through tests/clients/test_seed_jest.py).
const path = require("node:path");

module.exports = {
  rootDir: path.resolve(__dirname, "../.."), // clients/js
  roots: ["<rootDir>/test/seed-jest"],
  testEnvironment: require.resolve("jest-environment-jsdom"),
  testMatch: ["**/*.test.ts"],
  transform: {
    "\\.[jt]s$": [
      require.resolve("babel-jest"),
      {
        babelrc: false,
        configFile: false,
        presets: [
          [require.resolve("@babel/preset-env"), { targets: { node: "current" } }],
          require.resolve("@babel/preset-typescript"),
        ],
      },
    ],
  },
};
